//! Typed scalar values of recipes and config: durations, memory sizes, GRES
//! strings and the "any scalar as a string" values of environments and args.
//!
//! Each type parses from the forms people write (SLURM times, `16GB`, `gpu:a100:2`),
//! prints back in a canonical form that parses to the same value, and carries a JSON
//! Schema whose `pattern` rejects malformed input before deserialisation runs.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration, memory size or GRES string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A length of time, whole seconds.
///
/// Accepted forms: an integer or digit string (seconds: `300`), a number with a unit
/// (`30s`, `5m`, `2h`, `1d`), and SLURM's clock forms `MM:SS`, `HH:MM:SS`, `D-HH`,
/// `D-HH:MM` and `D-HH:MM:SS`. Unlike SLURM, a bare number means seconds, as in the
/// original tool's recipes (`duration: 300  # seconds`). Displayed as `HH:MM:SS`, or
/// `D-HH:MM:SS` from one day on, which is also what `#SBATCH --time` receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    seconds: u64,
}

/// The JSON Schema `pattern` of a [`Duration`] written as a string.
pub const DURATION_PATTERN: &str = r"^(?:[0-9]+[smhd]?|[0-9]+:[0-5]?[0-9](?::[0-5]?[0-9])?|[0-9]+-(?:[01]?[0-9]|2[0-3])(?::[0-5]?[0-9]){0,2})$";

impl Duration {
    /// A duration of `seconds` seconds.
    #[must_use]
    pub const fn from_secs(seconds: u64) -> Self {
        Self { seconds }
    }

    /// The whole number of seconds.
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.seconds
    }

    /// The same length as a [`std::time::Duration`].
    #[must_use]
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }
}

fn parse_number(text: &str, what: &str) -> Result<u64, ValueError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::new(format!(
            "`{text}` is not a whole number of {what}"
        )));
    }
    text.parse::<u64>()
        .map_err(|_| ValueError::new(format!("`{text}` {what} is too large")))
}

fn checked(parts: &[(u64, u64)]) -> Result<u64, ValueError> {
    parts
        .iter()
        .try_fold(0u64, |acc, &(value, unit)| {
            value.checked_mul(unit).and_then(|v| acc.checked_add(v))
        })
        .ok_or_else(|| ValueError::new("duration is too large"))
}

fn below_60(value: u64, what: &str, text: &str) -> Result<u64, ValueError> {
    if value >= 60 {
        return Err(ValueError::new(format!(
            "{what} must be below 60 in `{text}`, found {value}"
        )));
    }
    Ok(value)
}

impl FromStr for Duration {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ValueError::new("a duration cannot be empty"));
        }
        if let Some((days, clock)) = text.split_once('-') {
            let days = parse_number(days, "days")?;
            let fields: Vec<&str> = clock.split(':').collect();
            if fields.len() > 3 {
                return Err(ValueError::new(format!(
                    "`{text}` has too many `:` fields; expected D-HH:MM:SS"
                )));
            }
            let hours = parse_number(fields[0], "hours")?;
            if hours >= 24 {
                return Err(ValueError::new(format!(
                    "hours must be below 24 after a day count in `{text}`, found {hours}"
                )));
            }
            let minutes = match fields.get(1) {
                Some(m) => below_60(parse_number(m, "minutes")?, "minutes", text)?,
                None => 0,
            };
            let seconds = match fields.get(2) {
                Some(s) => below_60(parse_number(s, "seconds")?, "seconds", text)?,
                None => 0,
            };
            let total = checked(&[(days, 86_400), (hours, 3_600), (minutes, 60), (seconds, 1)])?;
            return Ok(Self::from_secs(total));
        }
        if text.contains(':') {
            let fields: Vec<&str> = text.split(':').collect();
            let total = match fields.as_slice() {
                [m, s] => {
                    let minutes = parse_number(m, "minutes")?;
                    let seconds = below_60(parse_number(s, "seconds")?, "seconds", text)?;
                    checked(&[(minutes, 60), (seconds, 1)])?
                }
                [h, m, s] => {
                    let hours = parse_number(h, "hours")?;
                    let minutes = below_60(parse_number(m, "minutes")?, "minutes", text)?;
                    let seconds = below_60(parse_number(s, "seconds")?, "seconds", text)?;
                    checked(&[(hours, 3_600), (minutes, 60), (seconds, 1)])?
                }
                _ => {
                    return Err(ValueError::new(format!(
                        "`{text}` has too many `:` fields; expected HH:MM:SS"
                    )));
                }
            };
            return Ok(Self::from_secs(total));
        }
        let (digits, unit) = match text.as_bytes()[text.len() - 1] {
            b's' => (&text[..text.len() - 1], 1),
            b'm' => (&text[..text.len() - 1], 60),
            b'h' => (&text[..text.len() - 1], 3_600),
            b'd' => (&text[..text.len() - 1], 86_400),
            _ => (text, 1),
        };
        let value = parse_number(digits, "seconds")?;
        Ok(Self::from_secs(checked(&[(value, unit)])?))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.seconds / 86_400;
        let hours = self.seconds % 86_400 / 3_600;
        let minutes = self.seconds % 3_600 / 60;
        let seconds = self.seconds % 60;
        if days > 0 {
            write!(f, "{days}-{hours:02}:{minutes:02}:{seconds:02}")
        } else {
            write!(f, "{hours:02}:{minutes:02}:{seconds:02}")
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds or a duration such as \"30:00\" or \"02:00:00\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: whole seconds (`300`), a number with a unit (`30s`, `5m`, `2h`, `1d`) or SLURM's `MM:SS`, `HH:MM:SS`, `D-HH:MM:SS`.",
            "type": ["string", "integer"],
            "minimum": 0,
            "pattern": DURATION_PATTERN,
            "examples": ["02:00:00", "30:00", "1-12:00:00", 300]
        })
    }
}

/// An amount of memory in bytes.
///
/// Accepted forms: an integer (megabytes, as SLURM's `--mem`), or a number with a unit
/// `K`, `M`, `G`, `T` (optionally followed by `B` or `iB`: `16GB`, `512M`, `16G`,
/// `1.5G`) or `B` for bytes. Units are binary (1 G = 1024 M), as in SLURM. Displayed in
/// the largest unit that holds it exactly (`16G`, `1536M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Memory {
    bytes: u64,
}

/// The JSON Schema `pattern` of a [`Memory`] written as a string.
pub const MEMORY_PATTERN: &str = r"^[0-9]+(?:\.[0-9]{1,6})?\s*(?:[KkMmGgTt](?:[Ii]?[Bb])?|[Bb])?$";

const KIB: u64 = 1024;

impl Memory {
    /// An amount of `bytes` bytes.
    #[must_use]
    pub const fn from_bytes(bytes: u64) -> Self {
        Self { bytes }
    }

    /// The amount in bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        self.bytes
    }

    /// The amount in whole megabytes, rounded up: what `#SBATCH --mem` receives.
    #[must_use]
    pub const fn megabytes_ceil(self) -> u64 {
        self.bytes.div_ceil(KIB * KIB)
    }
}

impl FromStr for Memory {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit = unit.trim_start();
        let multiplier = match unit.to_ascii_uppercase().as_str() {
            "" | "M" | "MB" | "MIB" => KIB * KIB,
            "B" => 1,
            "K" | "KB" | "KIB" => KIB,
            "G" | "GB" | "GIB" => KIB * KIB * KIB,
            "T" | "TB" | "TIB" => KIB * KIB * KIB * KIB,
            _ => {
                return Err(ValueError::new(format!(
                    "unknown memory unit `{unit}` in `{text}`; expected K, M, G or T (e.g. \"16GB\")"
                )));
            }
        };
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::new(format!(
                "`{text}` is not a memory size; expected a number and a unit such as \"16GB\""
            )));
        }
        let dotted = number.contains('.');
        if (dotted && fraction.is_empty())
            || fraction.len() > 6
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ValueError::new(format!(
                "`{text}` has a malformed fraction; at most 6 decimals are allowed"
            )));
        }
        let too_large = || ValueError::new(format!("`{text}` is too large"));
        let whole: u64 = whole.parse().map_err(|_| too_large())?;
        let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
        if !fraction.is_empty() {
            let scale = 10u64.pow(fraction.len() as u32);
            let numerator: u64 = fraction.parse().map_err(|_| too_large())?;
            let part = u128::from(numerator) * u128::from(multiplier) / u128::from(scale);
            bytes = bytes
                .checked_add(u64::try_from(part).map_err(|_| too_large())?)
                .ok_or_else(too_large)?;
        }
        Ok(Self::from_bytes(bytes))
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("T", KIB * KIB * KIB * KIB),
            ("G", KIB * KIB * KIB),
            ("M", KIB * KIB),
            ("K", KIB),
        ];
        for (suffix, size) in UNITS {
            if self.bytes != 0 && self.bytes % size == 0 {
                return write!(f, "{}{suffix}", self.bytes / size);
            }
        }
        write!(f, "{}B", self.bytes)
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemoryVisitor;
        impl Visitor<'_> for MemoryVisitor {
            type Value = Memory;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("megabytes or a size such as \"16GB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Memory, E> {
                v.checked_mul(KIB * KIB)
                    .map(Memory::from_bytes)
                    .ok_or_else(|| E::custom("memory size is too large"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Memory, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("memory cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Memory, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(MemoryVisitor)
    }
}

impl JsonSchema for Memory {
    fn schema_name() -> Cow<'static, str> {
        "Memory".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A memory size: megabytes as an integer, or a number with a binary unit K, M, G or T (`16GB`, `512M`, `16G`).",
            "type": ["string", "integer"],
            "minimum": 0,
            "pattern": MEMORY_PATTERN,
            "examples": ["16GB", "512M", 4096]
        })
    }
}

/// How far a metric may miss its reference value: a percentage of it (`5%`) or an
/// amount in the metric's own unit (`20`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// A percentage of the reference value.
    Percent(f64),
    /// An amount in the metric's unit.
    Absolute(f64),
}

/// The JSON Schema `pattern` of a [`Tolerance`] written as a string.
pub const TOLERANCE_PATTERN: &str = r"^[0-9]+(?:\.[0-9]+)?\s*%?$";

impl Tolerance {
    /// The slack on `reference`.
    #[must_use]
    pub fn slack(self, reference: f64) -> f64 {
        match self {
            Self::Percent(p) => reference.abs() * p / 100.0,
            Self::Absolute(a) => a,
        }
    }
}

impl FromStr for Tolerance {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (number, percent) = match trimmed.strip_suffix('%') {
            Some(n) => (n.trim_end(), true),
            None => (trimmed, false),
        };
        let well_formed = !number.is_empty()
            && !number.starts_with('.')
            && !number.ends_with('.')
            && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && number.bytes().filter(|b| *b == b'.').count() <= 1;
        let value: f64 = match number.parse() {
            Ok(v) if well_formed => v,
            _ => {
                return Err(ValueError::new(format!(
                    "`{text}` is not a tolerance; expected a percentage such as \"5%\" or an amount such as 20"
                )));
            }
        };
        Ok(if percent {
            Self::Percent(value)
        } else {
            Self::Absolute(value)
        })
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percent(p) => write!(f, "{p}%"),
            Self::Absolute(a) => write!(f, "{a}"),
        }
    }
}

impl Serialize for Tolerance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Percent(_) => serializer.collect_str(self),
            Self::Absolute(a) => serializer.serialize_f64(*a),
        }
    }
}

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ToleranceVisitor;
        impl Visitor<'_> for ToleranceVisitor {
            type Value = Tolerance;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage such as \"5%\" or a non-negative amount")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tolerance, E> {
                if v >= 0.0 && v.is_finite() {
                    Ok(Tolerance::Absolute(v))
                } else {
                    Err(E::custom("a tolerance cannot be negative"))
                }
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tolerance, E> {
                Ok(Tolerance::Absolute(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tolerance, E> {
                let v =
                    u64::try_from(v).map_err(|_| E::custom("a tolerance cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tolerance, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(ToleranceVisitor)
    }
}

impl JsonSchema for Tolerance {
    fn schema_name() -> Cow<'static, str> {
        "Tolerance".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How far a metric may miss its bound: a percentage of it (`5%`) or an amount in the metric's unit.",
            "type": ["string", "number"],
            "minimum": 0,
            "pattern": TOLERANCE_PATTERN,
            "examples": ["5%", 20]
        })
    }
}

/// A SLURM generic resource request, such as `gpu:1`, `gpu:a100:2` or
/// `gpu:2,shard:4`: comma-separated `name[:type][:count]` items.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Gres(String);

/// The JSON Schema `pattern` of a [`Gres`].
pub const GRES_PATTERN: &str =
    r"^[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z0-9_.-]+)*(?:,[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z0-9_.-]+)*)*$";

impl Gres {
    /// The request as SLURM's `--gres` takes it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number of GPUs this request asks for (`gpu:2` and `gpu:a100:2` give 2,
    /// `gpu` gives 1), summed over all `gpu` items.
    #[must_use]
    pub fn gpu_count(&self) -> u32 {
        self.0
            .split(',')
            .filter(|item| item.split(':').next() == Some("gpu"))
            .map(|item| {
                item.rsplit(':')
                    .next()
                    .and_then(|last| last.parse::<u32>().ok())
                    .filter(|_| item.contains(':'))
                    .unwrap_or(1)
            })
            .sum()
    }
}

impl FromStr for Gres {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid_item = |item: &str| {
            let mut fields = item.split(':');
            let name_ok = fields.next().is_some_and(|name| {
                name.starts_with(|c: char| c.is_ascii_alphabetic())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            name_ok
                && fields.all(|f| {
                    !f.is_empty()
                        && f.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                })
        };
        if !text.is_empty() && text.split(',').all(valid_item) {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValueError::new(format!(
                "`{text}` is not a GRES request; expected `name[:type][:count]` such as \"gpu:1\""
            )))
        }
    }
}

impl fmt::Display for Gres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Gres {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for Gres {
    fn schema_name() -> Cow<'static, str> {
        "Gres".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A SLURM generic resource request: comma-separated `name[:type][:count]` items such as `gpu:1` or `gpu:a100:2`.",
            "type": "string",
            "pattern": GRES_PATTERN,
            "examples": ["gpu:1", "gpu:a100:2"]
        })
    }
}

/// A string that may be written in YAML as any scalar: `8000`, `true` and `"x"` are all
/// accepted and kept as their text (`"8000"`, `"true"`, `"x"`). Used for environment
/// values and command arguments, which reach the job as strings anyway.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ScalarString(pub String);

impl ScalarString {
    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScalarString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ScalarString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl JsonSchema for ScalarString {
    fn schema_name() -> Cow<'static, str> {
        "ScalarString".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_in_every_documented_form() {
        let cases = [
            ("02:00:00", 7_200),
            ("30:00", 1_800),
            ("1-12:00:00", 129_600),
            ("1-12", 129_600),
            ("1-12:30", 131_400),
            ("300", 300),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7_200),
            ("1d", 86_400),
            ("48:00:00", 172_800),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                text.parse::<Duration>().unwrap().as_secs(),
                seconds,
                "{text}"
            );
        }
        assert_eq!(Duration::from_secs(129_600).to_string(), "1-12:00:00");
        assert_eq!(Duration::from_secs(90).to_string(), "00:01:30");
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, needle) in [
            ("", "empty"),
            ("1:60", "seconds must be below 60"),
            ("1:60:00", "minutes must be below 60"),
            ("1-24:00:00", "hours must be below 24"),
            ("1:2:3:4", "too many"),
            ("5x", "not a whole number"),
            ("-5", "not a whole number"),
            ("99999999999999999999", "too large"),
        ] {
            let err = text.parse::<Duration>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn memory_in_every_documented_form() {
        let gib = 1024 * 1024 * 1024;
        for (text, bytes) in [
            ("16GB", 16 * gib),
            ("16G", 16 * gib),
            ("16GiB", 16 * gib),
            ("512M", 512 * 1024 * 1024),
            ("1.5G", 3 * gib / 2),
            ("4096", 4096 * 1024 * 1024),
            ("10B", 10),
            ("2t", 2 * 1024 * gib),
        ] {
            assert_eq!(text.parse::<Memory>().unwrap().bytes(), bytes, "{text}");
        }
        assert_eq!(Memory::from_bytes(3 * gib / 2).to_string(), "1536M");
        assert_eq!(Memory::from_bytes(3 * gib / 2).megabytes_ceil(), 1536);
    }

    #[test]
    fn bad_memory_says_why() {
        for text in [
            "16 Gigs",
            "GB",
            "",
            "1.2.3G",
            "-4G",
            "99999999999999T",
            "0.",
            "1.G",
        ] {
            assert!(text.parse::<Memory>().is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn gres_counts_gpus() {
        let gres: Gres = "gpu:a100:2,shard:4".parse().unwrap();
        assert_eq!(gres.gpu_count(), 2);
        assert_eq!("gpu".parse::<Gres>().unwrap().gpu_count(), 1);
        assert_eq!("gpu:4".parse::<Gres>().unwrap().gpu_count(), 4);
        assert!("gpu::1".parse::<Gres>().is_err());
        assert!("1gpu".parse::<Gres>().is_err());
        assert!("gpu:1; rm -rf /".parse::<Gres>().is_err());
    }

    #[test]
    fn tolerances_are_percentages_or_amounts() {
        assert_eq!("5%".parse::<Tolerance>().unwrap(), Tolerance::Percent(5.0));
        assert_eq!(
            "2.5 %".parse::<Tolerance>().unwrap(),
            Tolerance::Percent(2.5)
        );
        assert_eq!(
            "20".parse::<Tolerance>().unwrap(),
            Tolerance::Absolute(20.0)
        );
        assert!((Tolerance::Percent(5.0).slack(900.0) - 45.0).abs() < 1e-9);
        assert!((Tolerance::Absolute(20.0).slack(900.0) - 20.0).abs() < 1e-9);
        for bad in ["", "%", "5%%", "-5%", "five", ".5", "5.", "1.2.3"] {
            assert!(bad.parse::<Tolerance>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn duration_round_trips(seconds in 0u64..10_000_000_000) {
            let d = Duration::from_secs(seconds);
            prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }

        #[test]
        fn duration_clock_form_parses_to_its_parts(h in 0u64..10_000, m in 0u64..60, s in 0u64..60) {
            let text = format!("{h}:{m:02}:{s:02}");
            prop_assert_eq!(text.parse::<Duration>().unwrap().as_secs(), h * 3600 + m * 60 + s);
        }

        #[test]
        fn duration_rejects_out_of_range_fields(h in 0u64..100, m in 60u64..1000) {
            let text = format!("{h}:{m}:00");
            prop_assert!(text.parse::<Duration>().is_err());
        }

        #[test]
        fn duration_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<Duration>();
        }

        #[test]
        fn duration_parser_and_schema_pattern_agree(text in "[0-9:smhd-]{1,12}") {
            // The schema reports every malformed duration with the file's other
            // problems, so it must reject exactly what the parser rejects.
            prop_assert_eq!(
                schema_accepts(DURATION_PATTERN, &text),
                text.parse::<Duration>().is_ok(),
                "{:?}", text
            );
        }

        #[test]
        fn memory_round_trips(bytes in 0u64..(1u64 << 50)) {
            let m = Memory::from_bytes(bytes);
            prop_assert_eq!(m.to_string().parse::<Memory>().unwrap(), m);
        }

        #[test]
        fn memory_units_scale(n in 0u64..100_000) {
            prop_assert_eq!(format!("{n}G").parse::<Memory>().unwrap().bytes(), n << 30);
            prop_assert_eq!(format!("{n}MB").parse::<Memory>().unwrap().bytes(), n << 20);
            prop_assert_eq!(format!("{n}K").parse::<Memory>().unwrap().bytes(), n << 10);
        }

        #[test]
        fn memory_rejects_unknown_units(n in 0u64..1000, unit in "[a-zA-Z]{1,3}") {
            let upper = unit.to_ascii_uppercase();
            let known = ["B", "K", "KB", "KIB", "M", "MB", "MIB", "G", "GB", "GIB", "T", "TB", "TIB"];
            prop_assume!(!known.contains(&upper.as_str()));
            let text = format!("{n}{unit}");
            prop_assert!(text.parse::<Memory>().is_err(), "{:?} was accepted", text);
        }

        #[test]
        fn memory_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<Memory>();
        }

        #[test]
        fn tolerance_parser_and_schema_pattern_agree(text in "[0-9.]{1,6}[ ]?%?") {
            prop_assert_eq!(
                schema_accepts(TOLERANCE_PATTERN, &text),
                text.parse::<Tolerance>().is_ok(),
                "{:?}", text
            );
        }

        #[test]
        fn memory_parser_and_schema_pattern_agree(text in "[0-9.]{1,9}[ ]?[kKmMgGtTiIbB]{0,3}") {
            // Overflow is not a matter of form: the typed value reports it, located.
            let parsed = text.parse::<Memory>();
            prop_assume!(!parsed.as_ref().is_err_and(|e| e.to_string().contains("too large")));
            prop_assert_eq!(
                schema_accepts(MEMORY_PATTERN, &text),
                text.parse::<Memory>().is_ok(),
                "{:?}", text
            );
        }
    }

    /// Matches `text` against a schema pattern through the validator itself.
    fn schema_accepts(pattern: &str, text: &str) -> bool {
        let schema = serde_json::json!({ "type": "string", "pattern": pattern });
        jsonschema::validator_for(&schema)
            .expect("pattern compiles")
            .is_valid(&serde_json::json!(text))
    }
}
