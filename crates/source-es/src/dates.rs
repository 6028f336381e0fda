//! Date values read the way Elasticsearch reads them: with the field's mapping `format`, a list
//! of alternatives separated by `||` and tried in order, each a built-in format name
//! (`strict_date_optional_time`, `epoch_millis`, `basic_date`, …) or a custom java-time pattern
//! (`yyyy-MM-dd HH:mm:ss`).
//!
//! Patterns are translated once, at plan time, into [`chrono`] parse items; a pattern letter
//! outside the supported subset is refused then, naming the pattern. Values without a zone or
//! offset are UTC, as Elasticsearch stores them. Parsing is lenient where chrono is (a `MM` also
//! reads `3`; `strict_` names read as their non-strict companions); a value the format cannot
//! read is an error naming the format.
//!
//! Supported pattern letters: `y`/`u` (year; `yy` is 2000–2099 as in java-time), `M` (month;
//! `MMM`/`MMMM` English names), `d` (day of month), `D` (day of year), `E` (English weekday name,
//! checked against the date), `H` (hour 0–23), `m`, `s`, `S` (fraction of a second; `.SSS`
//! reads any number of digits after the dot), `X`/`x`/`Z` (offset: `Z`, `+HH`, `+HHmm` or
//! `+HH:mm`), quoted literals (`'T'`, `''` for a quote) and any other non-letter character.

use chrono::format::{parse, Fixed, Item, Numeric, Pad, Parsed, StrftimeItems};
use serde_json::Value;

/// One compiled `||` alternative.
#[derive(Debug, Clone, PartialEq)]
enum Alt {
    /// Milliseconds since the epoch (also with a fraction, and negative).
    EpochMillis,
    /// Seconds since the epoch.
    EpochSecond,
    /// A pattern, as one or more item sequences (a value matching any one is read).
    Pattern {
        seqs: Vec<Vec<Item<'static>>>,
        /// `yy`: the century is 2000, as java-time's reduced year reads it.
        two_digit_year: bool,
    },
}

/// A mapping's date `format`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    text: String,
    alts: Vec<Alt>,
}

/// The format Elasticsearch uses for a `date` field whose mapping has none.
pub const DEFAULT_DATE: &str = "strict_date_optional_time||epoch_millis";
/// The format Elasticsearch uses for a `date_nanos` field whose mapping has none.
pub const DEFAULT_DATE_NANOS: &str = "strict_date_optional_time_nanos||epoch_millis";

fn num(n: Numeric) -> Item<'static> {
    Item::Numeric(n, Pad::Zero)
}

fn lit(s: &'static str) -> Item<'static> {
    Item::Literal(s)
}

fn offset() -> Item<'static> {
    // `%#z`: `Z`, `+HH`, `+HHMM` or `+HH:MM` (chrono's permissive offset).
    StrftimeItems::new("%#z")
        .next()
        .unwrap_or(Item::Fixed(Fixed::TimezoneOffsetColonZ))
}

fn frac() -> Item<'static> {
    Item::Fixed(Fixed::Nanosecond)
}

/// The items of `strict_date_optional_time`: `yyyy[-MM[-dd['T'HH[:mm[:ss[.S…]]][offset]]]]`.
fn date_optional_time() -> Vec<Vec<Item<'static>>> {
    use Numeric::*;
    let ymd = vec![num(Year), lit("-"), num(Month), lit("-"), num(Day)];
    let mut seqs = vec![
        vec![num(Year)],
        vec![num(Year), lit("-"), num(Month)],
        ymd.clone(),
    ];
    let times: [&[Item<'static>]; 4] = [
        &[num(Hour)],
        &[num(Hour), lit(":"), num(Minute)],
        &[num(Hour), lit(":"), num(Minute), lit(":"), num(Second)],
        &[
            num(Hour),
            lit(":"),
            num(Minute),
            lit(":"),
            num(Second),
            frac(),
        ],
    ];
    for t in times {
        for zone in [false, true] {
            let mut s = ymd.clone();
            s.push(lit("T"));
            s.extend(t.iter().cloned());
            if zone {
                s.push(offset());
            }
            seqs.push(s);
        }
    }
    seqs
}

/// The java-time pattern of a built-in format name (without `strict_`), or `None`.
fn builtin_pattern(name: &str) -> Option<&'static str> {
    Some(match name {
        "basic_date" => "yyyyMMdd",
        "basic_date_time" => "yyyyMMdd'T'HHmmss.SSSZ",
        "basic_date_time_no_millis" => "yyyyMMdd'T'HHmmssZ",
        "basic_ordinal_date" => "yyyyDDD",
        "basic_ordinal_date_time" => "yyyyDDD'T'HHmmss.SSSZ",
        "basic_ordinal_date_time_no_millis" => "yyyyDDD'T'HHmmssZ",
        "basic_time" => "HHmmss.SSSZ",
        "basic_time_no_millis" => "HHmmssZ",
        "basic_t_time" => "'T'HHmmss.SSSZ",
        "basic_t_time_no_millis" => "'T'HHmmssZ",
        "date" | "year_month_day" => "yyyy-MM-dd",
        "date_hour" => "yyyy-MM-dd'T'HH",
        "date_hour_minute" => "yyyy-MM-dd'T'HH:mm",
        "date_hour_minute_second" => "yyyy-MM-dd'T'HH:mm:ss",
        "date_hour_minute_second_fraction" | "date_hour_minute_second_millis" => {
            "yyyy-MM-dd'T'HH:mm:ss.SSS"
        }
        "date_time" => "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
        "date_time_no_millis" => "yyyy-MM-dd'T'HH:mm:ssZ",
        "hour" => "HH",
        "hour_minute" => "HH:mm",
        "hour_minute_second" => "HH:mm:ss",
        "hour_minute_second_fraction" | "hour_minute_second_millis" => "HH:mm:ss.SSS",
        "ordinal_date" => "yyyy-DDD",
        "ordinal_date_time" => "yyyy-DDD'T'HH:mm:ss.SSSZ",
        "ordinal_date_time_no_millis" => "yyyy-DDD'T'HH:mm:ssZ",
        "time" => "HH:mm:ss.SSSZ",
        "time_no_millis" => "HH:mm:ssZ",
        "t_time" => "'T'HH:mm:ss.SSSZ",
        "t_time_no_millis" => "'T'HH:mm:ssZ",
        "year" => "yyyy",
        "year_month" => "yyyy-MM",
        _ => return None,
    })
}

/// ISO week-date built-ins (`xxxx-'W'ww-e`), which java-time patterns cannot spell with the
/// supported letters.
fn week_builtin(name: &str) -> Option<Vec<Item<'static>>> {
    use Numeric::*;
    let (y, w, d) = (num(IsoYear), num(IsoWeek), num(WeekdayFromMon));
    let time = [num(Hour), lit(":"), num(Minute), lit(":"), num(Second)];
    let basic_time = [num(Hour), num(Minute), num(Second)];
    Some(match name {
        "weekyear" => vec![y],
        "weekyear_week" => vec![y, lit("-W"), w],
        "week_date" | "weekyear_week_day" => vec![y, lit("-W"), w, lit("-"), d],
        "week_date_time" => {
            let mut v = vec![y, lit("-W"), w, lit("-"), d, lit("T")];
            v.extend(time);
            v.extend([frac(), offset()]);
            v
        }
        "week_date_time_no_millis" => {
            let mut v = vec![y, lit("-W"), w, lit("-"), d, lit("T")];
            v.extend(time);
            v.push(offset());
            v
        }
        "basic_week_date" => vec![y, lit("W"), w, d],
        "basic_week_date_time" => {
            let mut v = vec![y, lit("W"), w, d, lit("T")];
            v.extend(basic_time);
            v.extend([frac(), offset()]);
            v
        }
        "basic_week_date_time_no_millis" => {
            let mut v = vec![y, lit("W"), w, d, lit("T")];
            v.extend(basic_time);
            v.push(offset());
            v
        }
        _ => return None,
    })
}

/// Translates a java-time pattern into chrono items.
fn pattern_items(pattern: &str) -> Result<(Vec<Item<'static>>, bool), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut items = Vec::new();
    let mut two_digit_year = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; `''` is a quote.
            if chars.get(i + 1) == Some(&'\'') {
                items.push(lit("'"));
                i += 2;
                continue;
            }
            let mut text = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err("has an unclosed quote".into()),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        text.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&ch) => {
                        text.push(ch);
                        j += 1;
                    }
                }
            }
            items.push(Item::OwnedLiteral(text.into_boxed_str()));
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if matches!(c, '[' | ']' | '{' | '}' | '#') {
                return Err(format!(
                    "uses `{c}` (optional sections and reserved characters are not supported)"
                ));
            }
            items.push(Item::OwnedLiteral(c.to_string().into_boxed_str()));
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let prev_dot = matches!(items.last(), Some(Item::OwnedLiteral(s)) if &**s == ".");
        match (c, n) {
            ('y' | 'u', 2) => {
                items.push(num(Numeric::YearMod100));
                two_digit_year = true;
            }
            ('y' | 'u', _) => items.push(num(Numeric::Year)),
            ('M', 1 | 2) => items.push(num(Numeric::Month)),
            ('M', 3) => items.push(Item::Fixed(Fixed::ShortMonthName)),
            ('M', 4) => items.push(Item::Fixed(Fixed::LongMonthName)),
            ('d', 1 | 2) => items.push(num(Numeric::Day)),
            ('D', 1..=3) => items.push(num(Numeric::Ordinal)),
            ('E', 1..=3) => items.push(Item::Fixed(Fixed::ShortWeekdayName)),
            ('E', 4) => items.push(Item::Fixed(Fixed::LongWeekdayName)),
            ('H', 1 | 2) => items.push(num(Numeric::Hour)),
            ('m', 1 | 2) => items.push(num(Numeric::Minute)),
            ('s', 1 | 2) => items.push(num(Numeric::Second)),
            ('S', 1..=9) if prev_dot => {
                // `.SSS`: the dot and any number of digits (chrono reads them as a fraction).
                items.pop();
                items.push(frac());
            }
            ('S', 3) => items.push(StrftimeItems::new("%3f").next().unwrap_or(frac())),
            ('S', 6) => items.push(StrftimeItems::new("%6f").next().unwrap_or(frac())),
            ('S', 9) => items.push(StrftimeItems::new("%9f").next().unwrap_or(frac())),
            ('X' | 'x' | 'Z', 1..=5) => items.push(offset()),
            _ => {
                let run: String = std::iter::repeat_n(c, n).collect();
                return Err(format!(
                    "uses `{run}`, which vmig does not read (supported: y u M d D E H m s S X x Z, \
                     quoted literals and punctuation)"
                ));
            }
        }
        i += n;
    }
    Ok((items, two_digit_year))
}

impl DateFormat {
    /// Compiles a mapping `format` (`a||b||…`).
    ///
    /// # Errors
    /// An alternative that is neither a known built-in name nor a pattern of the supported
    /// subset: the message names that alternative and why.
    pub fn new(format: &str) -> Result<DateFormat, String> {
        let mut alts = Vec::new();
        for raw in format.split("||") {
            let f = raw.trim();
            // Elasticsearch 7 accepted an `8` prefix marking a java-time pattern.
            let f = f.strip_prefix('8').filter(|r| !r.is_empty()).unwrap_or(f);
            let name = f.strip_prefix("strict_").unwrap_or(f);
            let alt = match name {
                "" => return Err(format!("`{format}` has an empty alternative")),
                "epoch_millis" => Alt::EpochMillis,
                "epoch_second" => Alt::EpochSecond,
                "date_optional_time"
                | "date_optional_time_nanos"
                | "iso8601"
                | "date_time_nanos_optional" => Alt::Pattern {
                    seqs: date_optional_time(),
                    two_digit_year: false,
                },
                _ => {
                    if let Some(seq) = week_builtin(name) {
                        Alt::Pattern {
                            seqs: vec![seq],
                            two_digit_year: false,
                        }
                    } else {
                        let pattern = builtin_pattern(name).unwrap_or(f);
                        if pattern == f
                            && f.contains('_')
                            && f.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        {
                            return Err(format!("`{f}` is not a built-in date format vmig knows"));
                        }
                        let (items, two_digit_year) =
                            pattern_items(pattern).map_err(|e| format!("pattern `{f}` {e}"))?;
                        Alt::Pattern {
                            seqs: vec![items],
                            two_digit_year,
                        }
                    }
                }
            };
            alts.push(alt);
        }
        Ok(DateFormat {
            text: format.to_string(),
            alts,
        })
    }

    /// The format text as the mapping gives it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads one `_source` value (a string, or a number read as its decimal text, as
    /// Elasticsearch does) into epoch milliseconds, or epoch nanoseconds with `nanos`.
    ///
    /// # Errors
    /// A value no alternative reads, or one out of range.
    pub fn epoch(&self, v: &Value, nanos: bool) -> Result<i64, String> {
        let text = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => return Err(format!("{} is not a date", short(&v.to_string()))),
        };
        for alt in &self.alts {
            let ns = match alt {
                Alt::EpochMillis => epoch_nanos(&text, 1_000_000),
                Alt::EpochSecond => epoch_nanos(&text, 1_000_000_000),
                Alt::Pattern {
                    seqs,
                    two_digit_year,
                } => seqs
                    .iter()
                    .find_map(|s| pattern_nanos(&text, s, *two_digit_year)),
            };
            if let Some(ns) = ns {
                let out = if nanos {
                    i64::try_from(ns).ok()
                } else {
                    i64::try_from(ns.div_euclid(1_000_000)).ok()
                };
                return out.ok_or_else(|| {
                    format!(
                        "`{}` is out of the epoch-{} range",
                        short(&text),
                        if nanos { "nanosecond" } else { "millisecond" }
                    )
                });
            }
        }
        Err(format!(
            "`{}` does not match the mapping's date format `{}`; keep the text with `dates = \"string\"`",
            short(&text),
            self.text
        ))
    }
}

/// `[-]digits[.digits]` times `unit` nanoseconds.
fn epoch_nanos(text: &str, unit: i128) -> Option<i128> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || int.len() > 20
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut v = int.parse::<i128>().ok()? * unit;
    let mut scale = unit;
    for b in frac.bytes().take(18) {
        scale /= 10;
        v += i128::from(b - b'0') * scale;
    }
    Some(if neg { -v } else { v })
}

fn pattern_nanos(text: &str, items: &[Item<'static>], two_digit_year: bool) -> Option<i128> {
    let mut p = Parsed::new();
    parse(&mut p, text, items.iter()).ok()?;
    if two_digit_year && p.year_div_100().is_none() {
        p.set_year_div_100(20).ok()?;
    }
    let has_year = p.year().is_some() || p.year_mod_100().is_some() || p.isoyear().is_some();
    if !has_year {
        p.set_year(1970).ok()?;
    }
    let week_date = p.isoyear().is_some();
    if !week_date && p.ordinal().is_none() {
        if p.month().is_none() {
            p.set_month(1).ok()?;
        }
        if p.day().is_none() {
            p.set_day(1).ok()?;
        }
    }
    if p.isoweek().is_some() && p.weekday().is_none() {
        p.set_weekday(chrono::Weekday::Mon).ok()?;
    }
    if p.isoyear().is_some() && p.isoweek().is_none() {
        p.set_isoweek(1).ok()?;
        p.set_weekday(chrono::Weekday::Mon).ok()?;
    }
    if p.hour_div_12().is_none() {
        p.set_hour(0).ok()?;
    }
    if p.minute().is_none() {
        p.set_minute(0).ok()?;
    }
    let offset = p.offset().unwrap_or(0);
    let local = p.to_naive_datetime_with_offset(offset).ok()?;
    let utc = local.and_utc();
    let secs = i128::from(utc.timestamp()) - i128::from(offset);
    Some(secs * 1_000_000_000 + i128::from(utc.timestamp_subsec_nanos()))
}

fn short(raw: &str) -> String {
    let mut s: String = raw.chars().take(60).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(format: &str, v: Value) -> Result<i64, String> {
        DateFormat::new(format).unwrap().epoch(&v, false)
    }

    #[test]
    fn alternatives_are_tried_in_order() {
        let f = "yyyy-MM-dd HH:mm:ss||yyyy-MM-dd||epoch_millis";
        assert_eq!(ms(f, json!("2021-03-10 12:31:17")), Ok(1_615_379_477_000));
        assert_eq!(ms(f, json!("2021-03-10")), Ok(1_615_334_400_000));
        assert_eq!(ms(f, json!(1_615_379_477_123_i64)), Ok(1_615_379_477_123));
        assert_eq!(ms(f, json!("1615379477123")), Ok(1_615_379_477_123));
        assert_eq!(
            ms(f, json!("2021/03/10")).unwrap_err(),
            "`2021/03/10` does not match the mapping's date format `yyyy-MM-dd HH:mm:ss||yyyy-MM-dd||epoch_millis`; keep the text with `dates = \"string\"`"
        );
        // Only epoch_second: numbers are seconds.
        assert_eq!(
            ms("epoch_second", json!(1_615_379_477)),
            Ok(1_615_379_477_000)
        );
        assert_eq!(ms("epoch_second", json!(1.5)), Ok(1_500));
        assert_eq!(ms("epoch_millis", json!(-1000)), Ok(-1000));
    }

    #[test]
    fn the_default_format_reads_iso_and_epoch() {
        let d = |v: Value| ms(DEFAULT_DATE, v);
        assert_eq!(d(json!("2020-01-01T00:00:00Z")), Ok(1_577_836_800_000));
        assert_eq!(d(json!("2020-01-01")), Ok(1_577_836_800_000));
        assert_eq!(d(json!("2020")), Ok(1_577_836_800_000));
        assert_eq!(d(json!("2020-01")), Ok(1_577_836_800_000));
        assert_eq!(
            d(json!("2020-01-01T01:00:00.5+01:00")),
            Ok(1_577_836_800_500)
        );
        assert_eq!(d(json!("2020-01-01T01:00+0100")), Ok(1_577_836_800_000));
        assert_eq!(d(json!("2020-01-01T10")), Ok(1_577_872_800_000));
        assert_eq!(d(json!(1_577_836_800_000_i64)), Ok(1_577_836_800_000));
        assert!(d(json!("yesterday")).is_err());
        let n = DateFormat::new(DEFAULT_DATE_NANOS).unwrap();
        assert_eq!(
            n.epoch(&json!("2020-01-01T00:00:00.123456789Z"), true),
            Ok(1_577_836_800_123_456_789)
        );
    }

    #[test]
    fn built_in_names_and_custom_patterns() {
        let day = 1_615_334_400_000_i64; // 2021-03-10
        assert_eq!(ms("basic_date", json!("20210310")), Ok(day));
        assert_eq!(ms("strict_date", json!("2021-03-10")), Ok(day));
        assert_eq!(
            ms("basic_date_time", json!("20210310T000000.000Z")),
            Ok(day)
        );
        assert_eq!(
            ms("date_time_no_millis", json!("2021-03-10T01:00:00+01:00")),
            Ok(day)
        );
        assert_eq!(ms("ordinal_date", json!("2021-069")), Ok(day));
        assert_eq!(ms("week_date", json!("2021-W10-3")), Ok(day));
        assert_eq!(ms("year_month", json!("2021-03")), Ok(day - 9 * 86_400_000));
        assert_eq!(ms("hour_minute", json!("01:30")), Ok(5_400_000));
        assert_eq!(ms("dd/MM/yyyy", json!("10/03/2021")), Ok(day));
        assert_eq!(ms("yyyyMMdd'T'HHmm", json!("20210310T0000")), Ok(day));
        assert_eq!(ms("dd.MM.yy", json!("10.03.21")), Ok(day));
        assert_eq!(
            ms(
                "EEE, dd MMM yyyy HH:mm:ss Z",
                json!("Wed, 10 Mar 2021 00:00:00 +0000")
            ),
            Ok(day)
        );
        assert_eq!(
            ms(
                "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
                json!("2021-03-10T00:00:00.250Z")
            ),
            Ok(day + 250)
        );
        assert_eq!(ms("8yyyy-MM-dd", json!("2021-03-10")), Ok(day));
        assert_eq!(
            DateFormat::new("yyyy-MM-dd||YYYY-ww").unwrap_err(),
            "pattern `YYYY-ww` uses `YYYY`, which vmig does not read (supported: y u M d D E H m s S X x Z, quoted literals and punctuation)"
        );
        assert_eq!(
            DateFormat::new("yyyy[-MM]").unwrap_err(),
            "pattern `yyyy[-MM]` uses `[` (optional sections and reserved characters are not supported)"
        );
        assert_eq!(
            DateFormat::new("rfc_1123_ish").unwrap_err(),
            "`rfc_1123_ish` is not a built-in date format vmig knows"
        );
    }
}
