//! Typed reads out of a decoded bencode dictionary, each failure naming the
//! field's full path (`info.files[3].path[1]`) and what was found there.

use std::collections::{BTreeMap, HashMap};

use serde_bencode::value::Value;

use super::MetainfoError;

/// The name of a bencode value's kind, for error messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Int(_) => "an integer",
        Value::Bytes(_) => "a byte string",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dictionary",
    }
}

fn wrong_type(field: &str, expected: &'static str, found: &Value) -> MetainfoError {
    MetainfoError::WrongType {
        field: field.to_owned(),
        expected,
        found: kind(found),
    }
}

/// A dictionary being taken apart: known keys are removed as they are read,
/// and what is left over is kept (sorted) so unknown keys survive a rewrite.
pub(super) struct Fields {
    map: HashMap<Vec<u8>, Value>,
    /// Where this dictionary sits, e.g. `info` or `info.files[2]`; empty at the root.
    at: String,
}

impl Fields {
    pub(super) fn new(value: Value, at: &str) -> Result<Self, MetainfoError> {
        match value {
            Value::Dict(map) => Ok(Fields {
                map,
                at: at.to_owned(),
            }),
            other => Err(wrong_type(
                if at.is_empty() { "(root)" } else { at },
                "a dictionary",
                &other,
            )),
        }
    }

    pub(super) fn field(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key.as_bytes())
    }

    pub(super) fn require(&mut self, key: &str) -> Result<Value, MetainfoError> {
        self.take(key).ok_or_else(|| MetainfoError::Missing {
            field: self.field(key),
        })
    }

    pub(super) fn int(&mut self, key: &str) -> Result<Option<i64>, MetainfoError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Int(n)) => Ok(Some(n)),
            Some(other) => Err(wrong_type(&self.field(key), "an integer", &other)),
        }
    }

    pub(super) fn bytes(&mut self, key: &str) -> Result<Option<Vec<u8>>, MetainfoError> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => as_bytes(value, &self.field(key)).map(Some),
        }
    }

    /// A UTF-8 text field (names, paths, URLs): invalid UTF-8 is an error.
    pub(super) fn text(&mut self, key: &str) -> Result<Option<String>, MetainfoError> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => as_text(value, &self.field(key)).map(Some),
        }
    }

    /// A free-form text field (comment, created by): invalid UTF-8 is replaced.
    pub(super) fn lossy_text(&mut self, key: &str) -> Result<Option<String>, MetainfoError> {
        Ok(self
            .bytes(key)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// What was not read, sorted by key.
    pub(super) fn rest(self) -> BTreeMap<Vec<u8>, Value> {
        self.map.into_iter().collect()
    }
}

pub(super) fn as_bytes(value: Value, field: &str) -> Result<Vec<u8>, MetainfoError> {
    match value {
        Value::Bytes(b) => Ok(b),
        other => Err(wrong_type(field, "a byte string", &other)),
    }
}

pub(super) fn as_text(value: Value, field: &str) -> Result<String, MetainfoError> {
    String::from_utf8(as_bytes(value, field)?).map_err(|_| MetainfoError::NotUtf8 {
        field: field.to_owned(),
    })
}

pub(super) fn as_list(value: Value, field: &str) -> Result<Vec<Value>, MetainfoError> {
    match value {
        Value::List(items) => Ok(items),
        other => Err(wrong_type(field, "a list", &other)),
    }
}

pub(super) fn as_int(value: Value, field: &str) -> Result<i64, MetainfoError> {
    match value {
        Value::Int(n) => Ok(n),
        other => Err(wrong_type(field, "an integer", &other)),
    }
}
