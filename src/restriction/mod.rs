//! Restrictions: which devices a restricted key may authenticate and see.
//!
//! PLACEHOLDER — being replaced by the full parser, canonical form and index.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::device::Device;

/// A set of device IDs and tag patterns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Restriction {
    ids: Vec<Box<str>>,
}

/// Why a restriction expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestrictionError {
    /// The expression is empty.
    #[error("expected a device ID or a tag pattern at byte 0, found an empty restriction")]
    Empty,
}

impl Restriction {
    /// Whether `device` is in this restriction's scope.
    pub fn can_see<D: Device + ?Sized>(&self, device: &D) -> bool {
        self.ids.iter().any(|id| **id == *device.id())
    }
}

impl FromStr for Restriction {
    type Err = RestrictionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(RestrictionError::Empty);
        }
        let mut ids: Vec<Box<str>> = s.split(',').map(|p| p.trim().into()).collect();
        ids.sort();
        ids.dedup();
        Ok(Self { ids })
    }
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.ids.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(id)?;
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Restriction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Restriction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(crate::serde_util::FromStrVisitor::new("a restriction"))
    }
}
