//! Byte sizes in job files: one type, one meaning of every unit.
//!
//! Every option that takes a size (`max_file_size`, `row_group_size`, `batch_bytes`, …) is a
//! [`ByteSize`], written as
//!
//! * a whole number of bytes: `1073741824` (TOML/YAML integer) or `"1073741824"`;
//! * a number and a unit, with or without a space: `"512MiB"`, `"1 GiB"`, `"1.5GiB"`, `"64MB"`.
//!
//! | unit | bytes | unit | bytes |
//! |---|---|---|---|
//! | `B` | 1 | | |
//! | `KB` | 10^3 | `KiB` | 2^10 |
//! | `MB` | 10^6 | `MiB` | 2^20 |
//! | `GB` | 10^9 | `GiB` | 2^30 |
//! | `TB` | 10^12 | `TiB` | 2^40 |
//!
//! Units ignore case (`"512mib"` is `"512MiB"`). A bare `K`, `M`, `G` or `T` is refused as
//! ambiguous: tools disagree on whether `512m` means 512 * 10^6 or 512 * 2^20 bytes, so the error
//! asks for `512MiB` or `512MB`. A fraction must come to a whole number of bytes (`"1.5KiB"` is
//! 1536; `"0.1KiB"` is refused). Negative sizes and sizes over `u64::MAX` bytes are errors, never
//! wrapped or clamped. Every error names the value as written and the accepted forms.
//!
//! A size is printed (and serialised) in one canonical form: the largest binary unit that
//! divides it exactly (`1GiB`, `16MiB`; `"64MB"` prints as `62500KiB`), else bytes
//! (`1000000B`), which reads back as the same number of bytes.
//!
//! The main design decision: this is a small type of vmig's own rather than the `bytesize`
//! crate, whose parser reads a bare `M` as 10^6, saturates on overflow instead of reporting it,
//! goes through `f64` for fractions, and prints sizes rounded to one decimal (`1.0 GiB`).

use std::fmt;
use std::str::FromStr;

/// What every size error says the accepted forms are.
const ACCEPTED: &str = "write a whole number of bytes (1048576) or a number and a unit: \
     B, KB, MB, GB, TB (10^3, 10^6, 10^9, 10^12 bytes) or KiB, MiB, GiB, TiB \
     (2^10, 2^20, 2^30, 2^40 bytes), e.g. \"512MiB\" or \"64MB\"";

/// Units and their sizes in bytes; names are matched ignoring case.
const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Binary units [`ByteSize`]'s `Display` uses, largest first.
const CANONICAL: [(&str, u64); 4] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
];

/// Most decimal places a size may have (after trailing zeros are dropped); keeps the exact
/// arithmetic inside `u128`.
const MAX_DECIMALS: usize = 19;

/// A number of bytes, read from a job file by the rules of the [module docs](self).
///
/// ```
/// use vmig_core::size::ByteSize;
///
/// assert_eq!("512MiB".parse::<ByteSize>(), Ok(ByteSize::mib(512)));
/// assert_eq!("64MB".parse::<ByteSize>(), Ok(ByteSize(64_000_000)));
/// assert_eq!(ByteSize::gib(1).to_string(), "1GiB");
/// assert_eq!(ByteSize(1_000_000).to_string(), "1000000B");
/// let err = "512m".parse::<ByteSize>().unwrap_err().to_string();
/// assert!(err.contains("write \"512MiB\""), "{err}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` KiB (`n` * 2^10 bytes).
    ///
    /// # Panics
    /// If that is more than `u64::MAX` bytes (at compile time in a `const`).
    pub const fn kib(n: u64) -> ByteSize {
        Self::times(n, 1 << 10)
    }

    /// `n` MiB (`n` * 2^20 bytes).
    ///
    /// # Panics
    /// If that is more than `u64::MAX` bytes (at compile time in a `const`).
    pub const fn mib(n: u64) -> ByteSize {
        Self::times(n, 1 << 20)
    }

    /// `n` GiB (`n` * 2^30 bytes).
    ///
    /// # Panics
    /// If that is more than `u64::MAX` bytes (at compile time in a `const`).
    pub const fn gib(n: u64) -> ByteSize {
        Self::times(n, 1 << 30)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The number of bytes as a `usize`, `usize::MAX` where it does not fit (32-bit targets).
    pub fn bytes_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    const fn times(n: u64, unit: u64) -> ByteSize {
        match n.checked_mul(unit) {
            Some(bytes) => ByteSize(bytes),
            None => panic!("byte size over u64::MAX"),
        }
    }
}

impl fmt::Display for ByteSize {
    /// The canonical form: `1GiB`, `16MiB`, `200KiB`, `1000000B`, `0B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in CANONICAL {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Why a text is not a [`ByteSize`]. Each message names the value as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ByteSizeError {
    /// Nothing (or only whitespace) was written.
    #[error("an empty string is not a size; {ACCEPTED}")]
    Empty,
    /// A bare `K`, `M`, `G` or `T`, which tools read as either 10^n or 2^n.
    #[error(
        "`{value}` is ambiguous: write \"{number}{prefix}iB\" ({number} * 2^{binary} bytes) or \
         \"{number}{prefix}B\" ({number} * 10^{decimal} bytes)"
    )]
    Ambiguous {
        /// The value as written.
        value: String,
        /// Its number part.
        number: String,
        /// The unit letter, upper case.
        prefix: char,
        /// The power of 2 of the binary unit.
        binary: u32,
        /// The power of 10 of the decimal unit.
        decimal: u32,
    },
    /// A minus sign.
    #[error("`{value}` is not a size: sizes cannot be negative; {ACCEPTED}")]
    Negative {
        /// The value as written.
        value: String,
    },
    /// A unit that is not in the table.
    #[error("`{value}` is not a size: unknown unit `{unit}`; {ACCEPTED}")]
    UnknownUnit {
        /// The value as written.
        value: String,
        /// The unit as written.
        unit: String,
    },
    /// No number where one should be, or a malformed one.
    #[error("`{value}` is not a size: it must start with a number; {ACCEPTED}")]
    NotANumber {
        /// The value as written.
        value: String,
    },
    /// A fraction that does not come to a whole number of bytes.
    #[error(
        "`{value}` is not a whole number of bytes; use a smaller unit or a byte count; {ACCEPTED}"
    )]
    NotWhole {
        /// The value as written.
        value: String,
    },
    /// More than 19 decimal places (trailing zeros aside).
    #[error("`{value}` has more than {MAX_DECIMALS} decimal places; {ACCEPTED}")]
    TooPrecise {
        /// The value as written.
        value: String,
    },
    /// More than `u64::MAX` bytes.
    #[error("`{value}` is too large: a size is at most {max} bytes (16EiB - 1B)", max = u64::MAX)]
    Overflow {
        /// The value as written.
        value: String,
    },
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value = || text.to_string();
        let t = text.trim();
        if t.is_empty() {
            return Err(ByteSizeError::Empty);
        }
        if t.starts_with('-') {
            return Err(ByteSizeError::Negative { value: value() });
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let unit = unit.trim_start();
        let Some((whole, fraction)) = split_number(number) else {
            return Err(ByteSizeError::NotANumber { value: value() });
        };
        let scale = match unit_scale(unit) {
            Ok(scale) => scale,
            Err(Some((prefix, binary, decimal))) => {
                return Err(ByteSizeError::Ambiguous {
                    value: value(),
                    number: number.to_string(),
                    prefix,
                    binary,
                    decimal,
                })
            }
            Err(None) => {
                return Err(ByteSizeError::UnknownUnit {
                    value: value(),
                    unit: unit.to_string(),
                })
            }
        };
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > MAX_DECIMALS {
            return Err(ByteSizeError::TooPrecise { value: value() });
        }
        let overflow = || ByteSizeError::Overflow { value: value() };
        // `whole` and `fraction` are ASCII digits only, so the parses fail only on length.
        let whole: u128 = whole.parse().map_err(|_| overflow())?;
        let mut bytes = whole.checked_mul(u128::from(scale)).ok_or_else(overflow)?;
        if !fraction.is_empty() {
            let digits: u128 = fraction.parse().map_err(|_| overflow())?;
            let denominator = 10u128.pow(fraction.len() as u32);
            let numerator = digits * u128::from(scale);
            if !numerator.is_multiple_of(denominator) {
                return Err(ByteSizeError::NotWhole { value: value() });
            }
            bytes = bytes
                .checked_add(numerator / denominator)
                .ok_or_else(overflow)?;
        }
        u64::try_from(bytes).map(ByteSize).map_err(|_| overflow())
    }
}

/// `"12.5"` → `("12", "5")`, `"12"` → `("12", "")`; `None` unless digits, optionally followed
/// by a point and more digits.
fn split_number(number: &str) -> Option<(&str, &str)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match number.split_once('.') {
        None => digits(number).then_some((number, "")),
        Some((whole, fraction)) => (digits(whole) && digits(fraction)).then_some((whole, fraction)),
    }
}

/// The bytes in `unit` (empty: bytes); `Err(Some((letter, 2^n, 10^n)))` for an ambiguous bare
/// prefix letter, `Err(None)` for an unknown unit.
fn unit_scale(unit: &str) -> Result<u64, Option<(char, u32, u32)>> {
    if unit.is_empty() {
        return Ok(1);
    }
    let lower = unit.to_ascii_lowercase();
    if let Some((_, scale)) = UNITS.iter().find(|(name, _)| *name == lower) {
        return Ok(*scale);
    }
    match lower.as_str() {
        "k" => Err(Some(('K', 10, 3))),
        "m" => Err(Some(('M', 20, 6))),
        "g" => Err(Some(('G', 30, 9))),
        "t" => Err(Some(('T', 40, 12))),
        _ => Err(None),
    }
}

impl serde::Serialize for ByteSize {
    /// The canonical form as a string (`"1GiB"`, `"1000000B"`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    /// A non-negative integer (bytes) or a string by the rules of the module docs.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a size: {ACCEPTED}")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| {
                    E::custom(ByteSizeError::Negative {
                        value: v.to_string(),
                    })
                })
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

    fn p(s: &str) -> Result<u64, String> {
        s.parse::<ByteSize>()
            .map(|b| b.0)
            .map_err(|e| e.to_string())
    }

    const FORMS: &str = "write a whole number of bytes (1048576) or a number and a unit: B, KB, MB, GB, TB (10^3, 10^6, 10^9, 10^12 bytes) or KiB, MiB, GiB, TiB (2^10, 2^20, 2^30, 2^40 bytes), e.g. \"512MiB\" or \"64MB\"";

    #[test]
    fn every_unit_has_one_meaning_in_any_case() {
        assert_eq!(p("7"), Ok(7));
        for (unit, bytes) in [
            ("B", 1),
            ("KB", 1_000),
            ("MB", 1_000_000),
            ("GB", 1_000_000_000),
            ("TB", 1_000_000_000_000),
            ("KiB", 1_024),
            ("MiB", 1_048_576),
            ("GiB", 1_073_741_824),
            ("TiB", 1_099_511_627_776),
        ] {
            for written in [unit, &unit.to_ascii_lowercase(), &unit.to_ascii_uppercase()] {
                assert_eq!(p(&format!("7{written}")), Ok(7 * bytes), "{written}");
            }
        }
        assert_eq!(p("512mIb"), Ok(512 << 20));
        assert_eq!(p("64mB"), Ok(64_000_000));
    }

    #[test]
    fn fractions_must_be_whole_bytes() {
        assert_eq!(p("1.5GiB"), Ok(3 << 29));
        assert_eq!(p("1.5KiB"), Ok(1536));
        assert_eq!(p("0.5MB"), Ok(500_000));
        assert_eq!(p("2.000MiB"), Ok(2 << 20));
        assert_eq!(p("0.0009765625KiB"), Ok(1));
        assert_eq!(
            p("0.1KiB"),
            Err(format!(
                "`0.1KiB` is not a whole number of bytes; use a smaller unit or a byte count; {FORMS}"
            ))
        );
        assert_eq!(
            p("1.5"),
            Err(format!(
                "`1.5` is not a whole number of bytes; use a smaller unit or a byte count; {FORMS}"
            ))
        );
        assert_eq!(
            p("1.00000000000000000001GiB"),
            Err(format!(
                "`1.00000000000000000001GiB` has more than 19 decimal places; {FORMS}"
            ))
        );
    }

    #[test]
    fn bare_prefix_letters_are_refused_as_ambiguous() {
        assert_eq!(
            p("512m"),
            Err("`512m` is ambiguous: write \"512MiB\" (512 * 2^20 bytes) or \"512MB\" (512 * 10^6 bytes)".into())
        );
        assert_eq!(
            p("512M"),
            Err("`512M` is ambiguous: write \"512MiB\" (512 * 2^20 bytes) or \"512MB\" (512 * 10^6 bytes)".into())
        );
        assert_eq!(
            p("4k"),
            Err(
                "`4k` is ambiguous: write \"4KiB\" (4 * 2^10 bytes) or \"4KB\" (4 * 10^3 bytes)"
                    .into()
            )
        );
        assert_eq!(
            p("1.5 G"),
            Err("`1.5 G` is ambiguous: write \"1.5GiB\" (1.5 * 2^30 bytes) or \"1.5GB\" (1.5 * 10^9 bytes)".into())
        );
        assert_eq!(
            p("2t"),
            Err(
                "`2t` is ambiguous: write \"2TiB\" (2 * 2^40 bytes) or \"2TB\" (2 * 10^12 bytes)"
                    .into()
            )
        );
    }

    #[test]
    fn unknown_units_and_non_numbers_name_the_value_and_the_forms() {
        assert_eq!(
            p("12 parsecs"),
            Err(format!(
                "`12 parsecs` is not a size: unknown unit `parsecs`; {FORMS}"
            ))
        );
        assert_eq!(
            p("1Mi"),
            Err(format!("`1Mi` is not a size: unknown unit `Mi`; {FORMS}"))
        );
        assert_eq!(
            p("1PiB"),
            Err(format!("`1PiB` is not a size: unknown unit `PiB`; {FORMS}"))
        );
        for s in ["MiB", ".5MiB", "5.MiB", "1.2.3MiB", "+5MiB", "0x10"] {
            let want = if s == "0x10" {
                format!("`0x10` is not a size: unknown unit `x10`; {FORMS}")
            } else {
                format!("`{s}` is not a size: it must start with a number; {FORMS}")
            };
            assert_eq!(p(s), Err(want), "{s}");
        }
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(p("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(p("18446744073709551615B"), Ok(u64::MAX));
        let too_large = |s: &str| {
            format!("`{s}` is too large: a size is at most 18446744073709551615 bytes (16EiB - 1B)")
        };
        for s in [
            "18446744073709551616",
            "16777216TiB",
            "99999999999TiB",
            "18446744073709551.616KB",
            "999999999999999999999999999999999999999999999",
        ] {
            assert_eq!(p(s), Err(too_large(s)), "{s}");
        }
        assert_eq!(p("16777215TiB"), Ok(16_777_215 << 40));
    }

    #[test]
    fn negative_is_an_error() {
        assert_eq!(
            p("-5MiB"),
            Err(format!(
                "`-5MiB` is not a size: sizes cannot be negative; {FORMS}"
            ))
        );
        assert_eq!(
            p(" -1"),
            Err(format!(
                "` -1` is not a size: sizes cannot be negative; {FORMS}"
            ))
        );
        assert_eq!(
            serde_json::from_str::<ByteSize>("-5")
                .unwrap_err()
                .to_string(),
            format!("`-5` is not a size: sizes cannot be negative; {FORMS} at line 1 column 2")
        );
    }

    #[test]
    fn empty_is_an_error() {
        let empty = format!("an empty string is not a size; {FORMS}");
        assert_eq!(p(""), Err(empty.clone()));
        assert_eq!(p("   "), Err(empty));
    }

    #[test]
    fn whitespace_around_the_value_and_before_the_unit_is_allowed() {
        assert_eq!(p(" 32MiB "), Ok(32 << 20));
        assert_eq!(p("1 GiB"), Ok(1 << 30));
        assert_eq!(p("\t1\tGiB\n"), Ok(1 << 30));
        assert_eq!(
            p("1 0MiB"),
            Err(format!(
                "`1 0MiB` is not a size: unknown unit `0MiB`; {FORMS}"
            ))
        );
        assert_eq!(
            p("1G iB"),
            Err(format!(
                "`1G iB` is not a size: unknown unit `G iB`; {FORMS}"
            ))
        );
    }

    #[test]
    fn display_is_canonical_and_reads_back() {
        for (bytes, text) in [
            (0, "0B"),
            (1, "1B"),
            (1000, "1000B"),
            (1_000_000, "1000000B"),
            (1 << 10, "1KiB"),
            (200 << 10, "200KiB"),
            (16 << 20, "16MiB"),
            (1 << 30, "1GiB"),
            (3 << 29, "1536MiB"),
            (16 << 30, "16GiB"),
            (1 << 40, "1TiB"),
            (1 << 50, "1024TiB"),
            (u64::MAX, "18446744073709551615B"),
        ] {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(p(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn constructors() {
        assert_eq!(ByteSize::kib(3), ByteSize(3072));
        assert_eq!(ByteSize::mib(16), ByteSize(16 << 20));
        assert_eq!(ByteSize::gib(16), ByteSize(16 << 30));
        assert_eq!(ByteSize::gib(2).bytes(), 2 << 30);
        assert_eq!(ByteSize::mib(1).bytes_usize(), 1 << 20);
    }

    #[test]
    fn serde_reads_integers_and_strings_and_writes_the_canonical_form() {
        let v: ByteSize = serde_json::from_str("1048576").unwrap();
        assert_eq!(v, ByteSize::mib(1));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1MiB\"");
        let v: ByteSize = serde_json::from_str("\"1 gib\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1GiB\"");
        let v: ByteSize = serde_json::from_str("\"64MB\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"62500KiB\"");
        let back: ByteSize = serde_json::from_str("\"62500KiB\"").unwrap();
        assert_eq!(back, v);
        let v: ByteSize = serde_json::from_str("1000000").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1000000B\"");
        assert_eq!(
            serde_json::from_str::<ByteSize>("\"512m\"")
                .unwrap_err()
                .to_string(),
            "`512m` is ambiguous: write \"512MiB\" (512 * 2^20 bytes) or \"512MB\" (512 * 10^6 bytes) at line 1 column 6"
        );
        assert_eq!(
            serde_json::from_str::<ByteSize>("1.5")
                .unwrap_err()
                .to_string(),
            format!(
                "invalid type: floating point `1.5`, expected a size: {FORMS} at line 1 column 3"
            )
        );
        assert_eq!(
            serde_json::from_str::<ByteSize>("true")
                .unwrap_err()
                .to_string(),
            format!("invalid type: boolean `true`, expected a size: {FORMS} at line 1 column 4")
        );
    }

    #[test]
    fn toml_integers_and_strings() {
        #[derive(serde::Deserialize)]
        struct T {
            a: ByteSize,
            b: ByteSize,
        }
        let t: T = toml::from_str("a = 4096\nb = \"4KiB\"\n").unwrap();
        assert_eq!((t.a, t.b), (ByteSize(4096), ByteSize::kib(4)));
        let e = toml::from_str::<T>("a = -1\nb = 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!(
                "`-1` is not a size: sizes cannot be negative; {FORMS}"
            )),
            "{e}"
        );
    }
}
