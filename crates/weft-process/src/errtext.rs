//! Recovers the message of a failed (de)serialization.
//!
//! postcard, the pool's codec, keeps no text for the errors that a type's
//! own `Serialize` or `Deserialize` makes with `Error::custom` (they all
//! read "Serde Serialization Error"), yet that text is what says what went
//! wrong. The fast path stays plain postcard; only when it fails that way
//! is the value run again through the adapters here, whose error type
//! keeps the message:
//!
//! - serializing: a serializer that writes nothing ([`Null`]) and accepts
//!   everything postcard accepts, so the type's `Serialize` fails at the
//!   same place with the same call to `Error::custom`;
//! - deserializing: a wrapper around postcard's deserializer ([`De`]) that
//!   hands the type's `Deserialize` (and every visitor, seed and access
//!   below it) an error type of its own. Where an error must cross
//!   postcard's own code (a nested value), its text is parked in a
//!   thread-local slot and picked up on the way out.
//!
//! A type whose (de)serialization is not deterministic may not fail the
//! second time; the caller then keeps postcard's text.

use std::cell::RefCell;
use std::fmt::{self, Display};

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::ser::{self, Serialize, Serializer};

/// An error that keeps its text.
#[derive(Debug)]
pub(crate) struct Text(pub(crate) String);

impl Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Text {}

impl ser::Error for Text {
    fn custom<T: Display>(msg: T) -> Self {
        Text(msg.to_string())
    }
}

impl de::Error for Text {
    fn custom<T: Display>(msg: T) -> Self {
        Text(msg.to_string())
    }
}

thread_local! {
    /// The text of an error on its way through postcard's code.
    static PARKED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// An error of ours, handed to postcard's code as one of its own; its text
/// is parked for [`unpark`].
fn park<E: de::Error>(e: Text) -> E {
    let _ = PARKED.try_with(|p| *p.borrow_mut() = Some(e.0.clone()));
    E::custom(e)
}

/// An error from postcard's code: the text parked on its way in if there is
/// one, else postcard's own.
fn unpark<E: Display>(e: E) -> Text {
    match PARKED.try_with(|p| p.borrow_mut().take()) {
        Ok(Some(text)) => Text(text),
        _ => Text(e.to_string()),
    }
}

/// The text of the error `value`'s `Serialize` gives, if it gives one
/// again when run without output.
pub(crate) fn serialize_text<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    value.serialize(&mut Null).err().map(|e| e.0)
}

/// The text of the error `T`'s `Deserialize` gives on `bytes` (postcard),
/// if it gives one again.
pub(crate) fn deserialize_text<T: de::DeserializeOwned>(bytes: &[u8]) -> Option<String> {
    let _ = PARKED.try_with(|p| p.borrow_mut().take());
    let mut inner = postcard::Deserializer::from_bytes(bytes);
    let text = T::deserialize(De(&mut inner)).err().map(|e| e.0);
    let _ = PARKED.try_with(|p| p.borrow_mut().take());
    text
}

// ---- serializing -------------------------------------------------------------

/// A serializer that writes nothing and accepts what postcard accepts.
pub(crate) struct Null;

/// Unknown lengths are postcard's own error, whose text is its own too.
fn need_len(len: Option<usize>) -> Result<(), Text> {
    match len {
        Some(_) => Ok(()),
        None => Err(Text(
            "a sequence or map of unknown length cannot be serialized".into(),
        )),
    }
}

macro_rules! null_scalars {
    ($($m:ident($t:ty)),* $(,)?) => {
        $(fn $m(self, _: $t) -> Result<(), Text> { Ok(()) })*
    };
}

impl Serializer for &mut Null {
    type Ok = ();
    type Error = Text;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    null_scalars!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Result<(), Text> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Text> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Text> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Text> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Text> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Text> {
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Text> {
        need_len(len).map(|()| self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Text> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Text> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Text> {
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self, Text> {
        need_len(len).map(|()| self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Text> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Text> {
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        // As postcard.
        false
    }
}

macro_rules! null_compound {
    ($($tr:ident :: $m:ident),* $(,)?) => {
        $(
            impl ser::$tr for &mut Null {
                type Ok = ();
                type Error = Text;

                fn $m<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Text> {
                    value.serialize(&mut **self)
                }

                fn end(self) -> Result<(), Text> {
                    Ok(())
                }
            }
        )*
    };
}

null_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for &mut Null {
    type Ok = ();
    type Error = Text;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Text> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Text> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Text> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Null {
    type Ok = ();
    type Error = Text;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Text> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Text> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Null {
    type Ok = ();
    type Error = Text;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Text> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Text> {
        Ok(())
    }
}

// ---- deserializing -------------------------------------------------------------

/// A deserializer that forwards to `D` with [`Text`] as its error type.
struct De<D>(D);

/// A visitor, seed or access wrapped so that what it hands on is wrapped
/// too.
struct Wrap<T>(T);

macro_rules! forward_de {
    ($($m:ident),* $(,)?) => {
        $(
            fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Text> {
                self.0.$m(Wrap(visitor)).map_err(unpark)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<D> {
    type Error = Text;

    forward_de!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Text> {
        self.0
            .deserialize_unit_struct(name, Wrap(visitor))
            .map_err(unpark)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Text> {
        self.0
            .deserialize_newtype_struct(name, Wrap(visitor))
            .map_err(unpark)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Text> {
        self.0.deserialize_tuple(len, Wrap(visitor)).map_err(unpark)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Text> {
        self.0
            .deserialize_tuple_struct(name, len, Wrap(visitor))
            .map_err(unpark)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Text> {
        self.0
            .deserialize_struct(name, fields, Wrap(visitor))
            .map_err(unpark)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Text> {
        self.0
            .deserialize_enum(name, variants, Wrap(visitor))
            .map_err(unpark)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($m:ident($t:ty)),* $(,)?) => {
        $(
            fn $m<E: de::Error>(self, v: $t) -> Result<V::Value, E> {
                self.0.$m::<Text>(v).map_err(park)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none::<Text>().map_err(park)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit::<Text>().map_err(park)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(De(d)).map_err(park)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(De(d)).map_err(park)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrap(seq)).map_err(park)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap(map)).map_err(park)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrap(data)).map_err(park)
    }
}

/// A seed: what it deserializes gets a wrapped deserializer.
struct Seed<T>(T);

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> {
        self.0.deserialize(De(d)).map_err(park)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = Text;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Text> {
        self.0.next_element_seed(Seed(seed)).map_err(unpark)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = Text;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Text> {
        self.0.next_key_seed(Seed(seed)).map_err(unpark)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Text> {
        self.0.next_value_seed(Seed(seed)).map_err(unpark)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = Text;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Text> {
        self.0
            .variant_seed(Seed(seed))
            .map(|(value, variant)| (value, Wrap(variant)))
            .map_err(unpark)
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = Text;

    fn unit_variant(self) -> Result<(), Text> {
        self.0.unit_variant().map_err(unpark)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Text> {
        self.0.newtype_variant_seed(Seed(seed)).map_err(unpark)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Text> {
        self.0.tuple_variant(len, Wrap(visitor)).map_err(unpark)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Text> {
        self.0.struct_variant(fields, Wrap(visitor)).map_err(unpark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Serialize};

    /// Fails with a message of its own when it holds 13, both ways.
    #[derive(Debug)]
    struct Picky(u32);

    impl Serialize for Picky {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 == 13 {
                return Err(S::Error::custom("no 13 out"));
            }
            s.serialize_u32(self.0)
        }
    }

    impl<'de> Deserialize<'de> for Picky {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match u32::deserialize(d)? {
                13 => Err(D::Error::custom("no 13 in")),
                n => Ok(Picky(n)),
            }
        }
    }

    #[derive(Debug, Serialize, Deserialize)]
    enum Shape {
        Unit,
        New(Picky),
        Tuple(u8, Picky),
        Struct { a: Option<Picky>, b: Vec<Picky> },
        Map(std::collections::BTreeMap<u8, Picky>),
    }

    #[test]
    fn custom_messages_are_recovered_however_deep() {
        let cases = [
            Shape::New(Picky(13)),
            Shape::Tuple(1, Picky(13)),
            Shape::Struct {
                a: Some(Picky(13)),
                b: vec![],
            },
            Shape::Struct {
                a: None,
                b: vec![Picky(1), Picky(13)],
            },
            Shape::Map([(1, Picky(2)), (3, Picky(13))].into()),
        ];
        for case in &cases {
            // postcard keeps no text.
            let e = postcard::to_stdvec(case).unwrap_err();
            assert_eq!(e, postcard::Error::SerdeSerCustom);
            assert_eq!(
                serialize_text(case).as_deref(),
                Some("no 13 out"),
                "{case:?}"
            );
        }
        // Encoded with 13 in place (as u32 it is the same bytes).
        #[derive(Serialize)]
        enum Raw {
            Unit,
            New(u32),
            Tuple(u8, u32),
            Struct { a: Option<u32>, b: Vec<u32> },
            Map(std::collections::BTreeMap<u8, u32>),
        }
        let raws = [
            Raw::New(13),
            Raw::Tuple(1, 13),
            Raw::Struct {
                a: Some(13),
                b: vec![],
            },
            Raw::Struct {
                a: None,
                b: vec![1, 13],
            },
            Raw::Map([(1, 2), (3, 13)].into()),
        ];
        for raw in &raws {
            let bytes = postcard::to_stdvec(raw).unwrap();
            assert!(postcard::from_bytes::<Shape>(&bytes).is_err());
            assert_eq!(
                deserialize_text::<Shape>(&bytes).as_deref(),
                Some("no 13 in")
            );
        }
        // Values that are fine give no text; postcard's own errors keep
        // postcard's text.
        let ok = postcard::to_stdvec(&Raw::Unit).unwrap();
        assert_eq!(deserialize_text::<Shape>(&ok), None);
        assert!(serialize_text(&Shape::Unit).is_none());
        let text = deserialize_text::<Shape>(&[9]).unwrap();
        assert!(!text.is_empty());
    }
}
