//! Byte sizes in configs: `1073741824`, `"1GiB"`, `"512MiB"`, `"64MB"`.

use std::fmt;
use std::str::FromStr;

const UNITS: [(&str, u64); 13] = [
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("kb", 1_000),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("mb", 1_000_000),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("gb", 1_000_000_000),
    ("t", 1 << 40),
    ("tib", 1 << 40),
    ("tb", 1_000_000_000_000),
];

/// A number of bytes. Parsed from an integer or a string with a unit: `KiB`, `MiB`, `GiB`,
/// `TiB` (powers of 1024; `K`, `M`, `G`, `T` mean the same), `KB`, `MB`, `GB`, `TB` (powers of
/// 1000) or `B`, case-insensitive, with an optional fraction (`"1.5GiB"`). Written back as the
/// largest exact binary unit (`"32MiB"`) or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` KiB.
    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n << 10)
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> ByteSize {
        ByteSize(n << 30)
    }
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let bad = || {
            format!(
                "`{s}` is not a byte size (write e.g. 1073741824, \"512MiB\", \"1GiB\" or \"64MB\")"
            )
        };
        let scale = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(bad)?
        };
        if number.is_empty() {
            return Err(bad());
        }
        if let Ok(n) = number.parse::<u64>() {
            return n
                .checked_mul(scale)
                .map(ByteSize)
                .ok_or_else(|| format!("`{s}` is too large"));
        }
        let x: f64 = number.parse().map_err(|_| bad())?;
        let bytes = (x * scale as f64).round();
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(format!("`{s}` is too large"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_string();
        if text.bytes().all(|b| b.is_ascii_digit()) {
            serializer.serialize_u64(self.0)
        } else {
            serializer.serialize_str(&text)
        }
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte count or a size like \"512MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a byte size cannot be negative ({v})")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let p = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(p("1GiB"), Ok(1 << 30));
        assert_eq!(p("512MiB"), Ok(512 << 20));
        assert_eq!(p("64MB"), Ok(64_000_000));
        assert_eq!(p(" 32 mib "), Ok(32 << 20));
        assert_eq!(p("1.5G"), Ok(3 << 29));
        assert_eq!(p("100"), Ok(100));
        assert_eq!(p("200KiB"), Ok(200 << 10));
        assert!(p("12 parsecs").is_err());
        assert!(p("MiB").is_err());
        assert!(p("").is_err());
        assert!(p("99999999999TiB").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let v: ByteSize = serde_json::from_str("1048576").unwrap();
        assert_eq!(v, ByteSize::mib(1));
        let v: ByteSize = serde_json::from_str("\"1GiB\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1GiB\"");
        assert_eq!(serde_json::to_string(&ByteSize(1000)).unwrap(), "1000");
        assert!(serde_json::from_str::<ByteSize>("-5").is_err());
    }
}
