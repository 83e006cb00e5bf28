//! Named, typed strategy parameters with defaults and validation.
//!
//! Each strategy declares its parameters as [`ParamSpec`]s; user input
//! (`fast=10`, from the CLI, the API or a sweep) is parsed against them, so an
//! unknown name, a wrong type or an out-of-range value is refused with a
//! message that names the parameter and what it accepts.

use std::collections::BTreeMap;
use std::fmt;

use model::Money;
use serde::Serialize;

/// The type and range of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    /// An exact decimal amount of money.
    Money {
        min: Money,
        max: Money,
    },
}

/// A parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Money(Money),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Money(v) => write!(f, "{v}"),
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub default: ParamValue,
    pub help: &'static str,
}

impl ParamSpec {
    /// What values this parameter accepts, for error messages and `--help`.
    #[must_use]
    pub fn accepts(&self) -> String {
        match self.kind {
            ParamKind::Int { min, max } => format!("an integer from {min} to {max}"),
            ParamKind::Float { min, max } => format!("a number from {min} to {max}"),
            ParamKind::Bool => "true or false".to_string(),
            ParamKind::Money { min, max } => format!("an amount from {min} to {max}"),
        }
    }

    /// Parses and range-checks a value given as text.
    pub fn parse(&self, text: &str) -> Result<ParamValue, ParamError> {
        let bad = || ParamError::InvalidValue {
            name: self.name.to_string(),
            value: text.to_string(),
            accepts: self.accepts(),
        };
        let t = text.trim();
        match self.kind {
            ParamKind::Int { min, max } => {
                let v: i64 = t.parse().map_err(|_| bad())?;
                if (min..=max).contains(&v) { Ok(ParamValue::Int(v)) } else { Err(bad()) }
            }
            ParamKind::Float { min, max } => {
                let v: f64 = t.parse().map_err(|_| bad())?;
                if v.is_finite() && v >= min && v <= max { Ok(ParamValue::Float(v)) } else { Err(bad()) }
            }
            ParamKind::Bool => match t.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(ParamValue::Bool(true)),
                "false" | "no" | "0" | "off" => Ok(ParamValue::Bool(false)),
                _ => Err(bad()),
            },
            ParamKind::Money { min, max } => {
                let v = Money::parse(t).map_err(|_| bad())?;
                if v >= min && v <= max { Ok(ParamValue::Money(v)) } else { Err(bad()) }
            }
        }
    }
}

/// Why parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter '{name}' for strategy {strategy}; it takes: {known}")]
    Unknown { strategy: String, name: String, known: String },
    #[error("parameter {name}={value} is invalid: expected {accepts}")]
    InvalidValue { name: String, value: String, accepts: String },
    #[error("parameter '{0}' is given more than once")]
    Repeated(String),
    #[error("parameter '{0}' must look like name=value")]
    Malformed(String),
    #[error("{0}")]
    Constraint(String),
}

/// Parsed parameter values, defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    values: BTreeMap<&'static str, ParamValue>,
}

impl Params {
    /// Parses `name=value` pairs against `specs`.
    pub fn parse(strategy: &str, specs: &[ParamSpec], given: &[(String, String)]) -> Result<Self, ParamError> {
        let mut values: BTreeMap<&'static str, ParamValue> = specs.iter().map(|s| (s.name, s.default)).collect();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in given {
            let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| ParamError::Unknown {
                strategy: strategy.to_string(),
                name: name.clone(),
                known: if specs.is_empty() {
                    "no parameters".to_string()
                } else {
                    specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                },
            })?;
            if !seen.insert(spec.name) {
                return Err(ParamError::Repeated(name.clone()));
            }
            values.insert(spec.name, spec.parse(value)?);
        }
        Ok(Self { values })
    }

    /// Splits `name=value`.
    pub fn split_pair(text: &str) -> Result<(String, String), ParamError> {
        let (k, v) = text.split_once('=').ok_or_else(|| ParamError::Malformed(text.to_string()))?;
        if k.trim().is_empty() {
            return Err(ParamError::Malformed(text.to_string()));
        }
        Ok((k.trim().to_string(), v.trim().to_string()))
    }

    /// The values in name order, as text (for reports and sweep tables).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, ParamValue)> + '_ {
        self.values.iter().map(|(k, v)| (*k, *v))
    }

    /// An integer parameter. Declared specs guarantee the type, so a mismatch
    /// is a programming error reported as a constraint failure, not a panic.
    pub fn int(&self, name: &str) -> Result<i64, ParamError> {
        match self.values.get(name) {
            Some(ParamValue::Int(v)) => Ok(*v),
            _ => Err(ParamError::Constraint(format!("parameter '{name}' is not a declared integer"))),
        }
    }

    /// An integer parameter as a window length.
    pub fn usize(&self, name: &str) -> Result<usize, ParamError> {
        let v = self.int(name)?;
        usize::try_from(v).map_err(|_| ParamError::Constraint(format!("parameter '{name}' must not be negative")))
    }

    pub fn float(&self, name: &str) -> Result<f64, ParamError> {
        match self.values.get(name) {
            Some(ParamValue::Float(v)) => Ok(*v),
            Some(ParamValue::Int(v)) => Ok(*v as f64),
            _ => Err(ParamError::Constraint(format!("parameter '{name}' is not a declared number"))),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, ParamError> {
        match self.values.get(name) {
            Some(ParamValue::Bool(v)) => Ok(*v),
            _ => Err(ParamError::Constraint(format!("parameter '{name}' is not a declared flag"))),
        }
    }

    pub fn money(&self, name: &str) -> Result<Money, ParamError> {
        match self.values.get(name) {
            Some(ParamValue::Money(v)) => Ok(*v),
            _ => Err(ParamError::Constraint(format!("parameter '{name}' is not a declared amount"))),
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.values {
            if !first {
                write!(f, " ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec { name: "fast", kind: ParamKind::Int { min: 1, max: 1000 }, default: ParamValue::Int(10), help: "" },
        ParamSpec { name: "long-only", kind: ParamKind::Bool, default: ParamValue::Bool(false), help: "" },
        ParamSpec {
            name: "k",
            kind: ParamKind::Float { min: 0.1, max: 10.0 },
            default: ParamValue::Float(2.0),
            help: "",
        },
    ];

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let p = Params::parse("t", SPECS, &given(&[("fast", "5"), ("long-only", "true")])).unwrap();
        assert_eq!(p.int("fast").unwrap(), 5);
        assert!(p.bool("long-only").unwrap());
        assert!((p.float("k").unwrap() - 2.0).abs() < f64::EPSILON);
        assert_eq!(p.to_string(), "fast=5 k=2 long-only=true");
    }

    #[test]
    fn refusals_name_the_parameter() {
        let cases = [
            ("unknown", vec![("slow", "5")], "unknown parameter 'slow'"),
            ("not an int", vec![("fast", "abc")], "fast=abc is invalid: expected an integer from 1 to 1000"),
            ("out of range", vec![("fast", "0")], "fast=0"),
            ("bad bool", vec![("long-only", "maybe")], "true or false"),
            ("nan", vec![("k", "NaN")], "k=NaN"),
            ("repeated", vec![("fast", "5"), ("fast", "6")], "more than once"),
        ];
        for (name, pairs, expected) in cases {
            let err = Params::parse("t", SPECS, &given(&pairs)).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
        assert!(Params::split_pair("fast").is_err());
        assert_eq!(Params::split_pair("fast = 5").unwrap(), ("fast".to_string(), "5".to_string()));
    }
}
