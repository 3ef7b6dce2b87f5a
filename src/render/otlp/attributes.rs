//! An attribute list written over the entries a finished span (or request)
//! left: an export makes two spans of some fifteen attributes per
//! operation, and with the keys' and values' strings reused it allocates
//! nothing per span once the first requests have gone.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use std::fmt::{Display, Write};

#[derive(Clone, Debug, Default)]
pub struct List {
    /// Entries past `len` are spares, kept for their strings.
    kvs: Vec<KeyValue>,
    len: usize,
}

impl List {
    /// Over a span's old attributes, from the first.
    pub fn over(kvs: Vec<KeyValue>) -> List {
        List { kvs, len: 0 }
    }

    /// The attributes written (the spares are freed).
    pub fn into_vec(mut self) -> Vec<KeyValue> {
        self.kvs.truncate(self.len);
        self.kvs
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn as_slice(&self) -> &[KeyValue] {
        &self.kvs[..self.len]
    }

    /// The next entry's value, its key set.
    fn slot(&mut self, key: &str) -> &mut Option<AnyValue> {
        if self.len == self.kvs.len() {
            self.kvs.push(KeyValue::default());
        }
        let kv = &mut self.kvs[self.len];
        self.len += 1;
        if kv.key != key {
            kv.key.clear();
            kv.key.push_str(key);
        }
        kv.key_strindex = 0;
        &mut kv.value
    }

    /// The next entry, a string value that `write` fills (the entry's old
    /// string, emptied, when it had one).
    fn text(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let slot = self.slot(key);
        let mut text = match slot.take().and_then(|v| v.value) {
            Some(Value::StringValue(s)) => s,
            _ => String::new(),
        };
        text.clear();
        write(&mut text);
        *slot = Some(AnyValue {
            value: Some(Value::StringValue(text)),
        });
    }

    pub fn string(&mut self, key: &str, value: &str) {
        self.text(key, |t| t.push_str(value));
    }

    /// A string value written as `value` displays (an address).
    pub fn display(&mut self, key: &str, value: impl Display) {
        self.text(key, |t| {
            // Writing to a String cannot fail.
            let _ = write!(t, "{value}");
        });
    }

    pub fn int(&mut self, key: &str, value: i64) {
        self.any(
            key,
            AnyValue {
                value: Some(Value::IntValue(value)),
            },
        );
    }

    pub fn boolean(&mut self, key: &str, value: bool) {
        self.any(
            key,
            AnyValue {
                value: Some(Value::BoolValue(value)),
            },
        );
    }

    /// Any other value (structured content), made by the caller.
    pub fn any(&mut self, key: &str, value: AnyValue) {
        *self.slot(key) = Some(value);
    }

    /// Copies of `from`'s entries, after those written.
    pub fn extend(&mut self, from: &[KeyValue]) {
        for kv in from {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => self.string(&kv.key, s),
                _ => *self.slot(&kv.key) = kv.value.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(kvs: &[KeyValue]) -> Vec<(String, Option<Value>)> {
        kvs.iter()
            .map(|kv| (kv.key.clone(), kv.value.clone().and_then(|v| v.value)))
            .collect()
    }

    #[test]
    fn a_list_written_over_another_holds_only_what_was_written() {
        let mut a = List::default();
        a.string("k1", "a long first value");
        a.int("k2", 7);
        a.boolean("k3", true);
        a.display("k4", std::net::Ipv4Addr::LOCALHOST);
        let old = a.into_vec();
        let mut b = List::over(old);
        b.int("k1", 1);
        b.string("other", "x");
        assert_eq!(
            shown(b.as_slice()),
            [
                ("k1".to_string(), Some(Value::IntValue(1))),
                ("other".to_string(), Some(Value::StringValue("x".into())))
            ]
        );
        let mut c = List::default();
        c.extend(b.as_slice());
        c.extend(b.as_slice());
        assert_eq!(c.as_slice().len(), 4);
        assert_eq!(shown(&c.as_slice()[2..]), shown(b.as_slice()));
        assert_eq!(b.into_vec().len(), 2);
        c.clear();
        c.string("k", "v");
        assert_eq!(
            shown(&c.into_vec()),
            [("k".to_string(), Some(Value::StringValue("v".into())))]
        );
    }
}
