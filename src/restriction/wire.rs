//! Serde: a restriction is written as its canonical text, and read from that text
//! or from the platform's `{"deviceIds": [...], "deviceTags": [...]}` object.
//!
//! The object is read entry by entry straight into a [`Builder`], so the limits
//! are enforced as the lists are read: a list longer than the limits is refused
//! at its first entry past them, before the rest is read.

use alloc::string::String;
use core::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Builder, Limits, Location, Restriction, TagFilter};

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for Restriction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for Restriction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Compact formats are not self-describing; they only ever hold the text.
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(RestrictionVisitor)
        } else {
            deserializer.deserialize_str(RestrictionVisitor)
        }
    }
}

struct RestrictionVisitor;

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    DeviceIds,
    DeviceTags,
}

impl<'de> Visitor<'de> for RestrictionVisitor {
    type Value = Restriction;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a restriction: its text, or an object with `deviceIds` and `deviceTags`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Restriction, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Restriction, A::Error> {
        let limits = Limits::PLATFORM;
        let mut builder = Builder::new(&limits);
        let (mut ids_seen, mut tags_seen) = (false, false);
        while let Some(field) = map.next_key()? {
            match field {
                Field::DeviceIds if ids_seen => {
                    return Err(de::Error::duplicate_field("deviceIds"));
                }
                Field::DeviceTags if tags_seen => {
                    return Err(de::Error::duplicate_field("deviceTags"));
                }
                Field::DeviceIds => {
                    ids_seen = true;
                    map.next_value_seed(List {
                        builder: &mut builder,
                        kind: ListKind::DeviceIds,
                    })?;
                }
                Field::DeviceTags => {
                    tags_seen = true;
                    map.next_value_seed(List {
                        builder: &mut builder,
                        kind: ListKind::DeviceTags,
                    })?;
                }
            }
        }
        builder
            .finish(Location::DeviceId(0))
            .map_err(de::Error::custom)
    }
}

#[derive(Clone, Copy)]
enum ListKind {
    DeviceIds,
    DeviceTags,
}

/// `deviceIds` or `deviceTags`, possibly `null`, read into the builder.
struct List<'b, 'l> {
    builder: &'b mut Builder<'l>,
    kind: ListKind,
}

impl<'de> DeserializeSeed<'de> for List<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for List<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ListKind::DeviceIds => "a list of device IDs",
            ListKind::DeviceTags => "a list of `{\"key\": …, \"value\": …}` tag filters",
        })
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let added = match self.kind {
                ListKind::DeviceIds => seq.next_element_seed(DeviceIdSeed {
                    builder: &mut *self.builder,
                    at: Location::DeviceId(index),
                })?,
                ListKind::DeviceTags => match seq.next_element::<WireTag>()? {
                    None => None,
                    Some(tag) => {
                        let filter = TagFilter::new(tag.key.as_deref(), tag.value.as_deref());
                        self.builder
                            .add_filter(filter, Location::TagFilter(index))
                            .map_err(de::Error::custom)?;
                        Some(())
                    }
                },
            };
            if added.is_none() {
                return Ok(());
            }
            index = index.saturating_add(1);
        }
    }
}

/// One device ID, borrowed from the input where the format allows it.
struct DeviceIdSeed<'b, 'l> {
    builder: &'b mut Builder<'l>,
    at: Location,
}

impl<'de> DeserializeSeed<'de> for DeviceIdSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for DeviceIdSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a device ID")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.builder.add_device_id(v, self.at).map_err(E::custom)
    }
}

/// An entry of `deviceTags`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTag {
    key: Option<String>,
    value: Option<String>,
}
