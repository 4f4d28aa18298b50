//! Serde: [`AdditionalTopics`] in the platform's shape,
//! `{"filterType": ..., "pubTopics": [...], "subTopics": [...]}`.
//!
//! Lists are read filter by filter into a bounded builder: a list longer than
//! [`MAX_FILTERS_PER_LIST`](super::MAX_FILTERS_PER_LIST) is refused at its first
//! filter past the limit, before the rest is read.

use alloc::format;
use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use super::policy::{AdditionalTopics, FilterList, FilterListError, ListBuilder};
use super::topic::TopicFilterBuf;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FilterType {
    None,
    All,
    Whitelist,
    Blacklist,
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for FilterList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(serializer)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for FilterList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ListVisitor { name: None })
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for AdditionalTopics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let none: &[TopicFilterBuf] = &[];
        let (filter_type, publish, subscribe) = match self {
            Self::None => (FilterType::None, none, none),
            Self::All => (FilterType::All, none, none),
            Self::AllowList { publish, subscribe } => (
                FilterType::Whitelist,
                publish.as_slice(),
                subscribe.as_slice(),
            ),
            Self::DenyList { publish, subscribe } => (
                FilterType::Blacklist,
                publish.as_slice(),
                subscribe.as_slice(),
            ),
        };
        let mut out = serializer.serialize_struct("AdditionalTopics", 3)?;
        out.serialize_field("filterType", &filter_type)?;
        out.serialize_field("pubTopics", publish)?;
        out.serialize_field("subTopics", subscribe)?;
        out.end()
    }
}

#[derive(Deserialize)]
#[serde(
    rename = "AdditionalTopics",
    rename_all = "camelCase",
    deny_unknown_fields
)]
struct WireIn {
    filter_type: FilterType,
    #[serde(default, deserialize_with = "pub_topics")]
    pub_topics: FilterList,
    #[serde(default, deserialize_with = "sub_topics")]
    sub_topics: FilterList,
}

fn pub_topics<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FilterList, D::Error> {
    deserializer.deserialize_option(ListVisitor {
        name: Some("pubTopics"),
    })
}

fn sub_topics<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FilterList, D::Error> {
    deserializer.deserialize_option(ListVisitor {
        name: Some("subTopics"),
    })
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for AdditionalTopics {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        let (publish, subscribe) = (wire.pub_topics, wire.sub_topics);
        Ok(match wire.filter_type {
            FilterType::None => Self::None,
            FilterType::All => Self::All,
            FilterType::Whitelist => Self::AllowList { publish, subscribe },
            FilterType::Blacklist => Self::DenyList { publish, subscribe },
        })
    }
}

/// Reads a list of filters (`null` or missing is an empty list).
struct ListVisitor {
    /// The field, to name it in errors.
    name: Option<&'static str>,
}

impl ListVisitor {
    fn error<E: de::Error>(&self, error: FilterListError) -> E {
        let Some(name) = self.name else {
            return E::custom(crate::text::Chain(&error));
        };
        match error {
            FilterListError::Filter { index, source } => {
                E::custom(format!("invalid topic filter at {name}[{index}]: {source}"))
            }
            FilterListError::TooMany { max } => E::custom(format!(
                "expected at most {max} topic filters in {name}, found one more at {name}[{max}]"
            )),
        }
    }
}

impl<'de> Visitor<'de> for ListVisitor {
    type Value = FilterList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of MQTT topic filters")
    }

    fn visit_none<E: de::Error>(self) -> Result<FilterList, E> {
        Ok(FilterList::empty())
    }

    fn visit_unit<E: de::Error>(self) -> Result<FilterList, E> {
        Ok(FilterList::empty())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<FilterList, D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FilterList, A::Error> {
        let mut builder = ListBuilder::default();
        while let Some(result) = seq.next_element_seed(FilterSeed {
            builder: &mut builder,
        })? {
            result.map_err(|e| self.error(e))?;
        }
        Ok(builder.finish())
    }
}

/// Reads one filter straight into the builder, without an owned copy of the
/// text first. The outcome is handed back so the list can name itself in the
/// error.
struct FilterSeed<'b> {
    builder: &'b mut ListBuilder,
}

impl<'de> DeserializeSeed<'de> for FilterSeed<'_> {
    type Value = Result<(), FilterListError>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FilterSeed<'_> {
    type Value = Result<(), FilterListError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an MQTT topic filter")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.builder.push(v))
    }
}
