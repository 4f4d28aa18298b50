//! Devices held compactly, for a broker that holds a platform's million.
//!
//! A device is its ID (held once, as the key of the map), its application
//! and its tags. Applications, tag keys and tag values repeat across devices
//! (fleets, floors, sites), so each is held once, as a [`Symbol`], and a
//! device holds 4 bytes per application and 8 per tag; a symbol no device
//! uses any more is freed. A [`DeviceView`] reads a device back as the core's
//! [`Device`]: `can_see` and the topic policy take it as they take a
//! `DeviceRecord`, without allocating.

use std::collections::HashMap;

use structure_access::{ApplicationId, Device, DeviceId, DeviceRecord};

/// The maps' hasher: foldhash, seeded per process (ids and tags come from the
/// operator's records, and lookups with client text cannot aim at collisions
/// without the seed).
pub(crate) type Hasher = foldhash::fast::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;
type DeviceMap = Map<Box<str>, Held>;

/// A string held once by [`Symbols`].
pub type Symbol = u32;

/// Interned strings, each counted by the devices that use it.
#[derive(Debug, Default)]
struct Symbols {
    by_text: Map<Box<str>, Symbol>,
    /// Each symbol's text and how many uses it has (`None`: free).
    texts: Vec<Option<(Box<str>, u32)>>,
    free: Vec<Symbol>,
}

impl Symbols {
    fn text(&self, symbol: Symbol) -> &str {
        self.texts
            .get(symbol as usize)
            .and_then(Option::as_ref)
            .map_or("", |(text, _)| text)
    }

    /// One more use of `text`.
    fn take(&mut self, text: &str) -> Symbol {
        if let Some(&symbol) = self.by_text.get(text) {
            if let Some(Some((_, uses))) = self.texts.get_mut(symbol as usize) {
                *uses += 1;
            }
            return symbol;
        }
        let entry = Some((Box::<str>::from(text), 1));
        let symbol = match self.free.pop() {
            Some(symbol) => {
                if let Some(slot) = self.texts.get_mut(symbol as usize) {
                    *slot = entry;
                }
                symbol
            }
            None => {
                self.texts.push(entry);
                Symbol::try_from(self.texts.len() - 1).unwrap_or(Symbol::MAX)
            }
        };
        self.by_text.insert(text.into(), symbol);
        symbol
    }

    /// One use less of `symbol`; freed with the last.
    fn give_back(&mut self, symbol: Symbol) {
        let Some(slot) = self.texts.get_mut(symbol as usize) else {
            return;
        };
        if let Some((text, uses)) = slot {
            *uses -= 1;
            if *uses == 0 {
                self.by_text.remove(&**text);
                *slot = None;
                self.free.push(symbol);
            }
        }
    }

    fn len(&self) -> usize {
        self.by_text.len()
    }
}

/// One device, as held.
#[derive(Debug)]
struct Held {
    application: Symbol,
    tags: Box<[(Symbol, Symbol)]>,
    /// The hash of the line it was read from (see [`crate::changes`]).
    line: u64,
}

/// Devices by ID.
#[derive(Debug, Default)]
pub struct Devices {
    symbols: Symbols,
    by_id: DeviceMap,
    /// How many devices each application has.
    applications: Map<Symbol, usize>,
}

/// A device held in [`Devices`], read as the core's [`Device`].
#[derive(Debug, Clone, Copy)]
pub struct DeviceView<'a> {
    id: &'a str,
    held: &'a Held,
    symbols: &'a Symbols,
}

impl Device for DeviceView<'_> {
    fn application(&self) -> &str {
        self.symbols.text(self.held.application)
    }
    fn id(&self) -> &str {
        self.id
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.held
            .tags
            .iter()
            .map(|&(k, v)| (self.symbols.text(k), self.symbols.text(v)))
    }
}

impl<'a> DeviceView<'a> {
    /// The device's ID.
    pub fn id_str(&self) -> &'a str {
        self.id
    }

    /// The device as an owned [`DeviceRecord`] (it allocates: for a device
    /// taken off to another thread).
    pub fn to_record(&self) -> Option<DeviceRecord> {
        let id: DeviceId = self.id.parse().ok()?;
        let application: ApplicationId = self.application().parse().ok()?;
        Some(
            self.tags()
                .fold(DeviceRecord::new(application, id), |d, (k, v)| {
                    d.with_tag(k, v)
                }),
        )
    }

    /// Whether it is `record`, field for field.
    pub fn is(&self, record: &DeviceRecord) -> bool {
        self.id == record.id()
            && self.application() == record.application()
            && self.tags().eq(record.tags())
    }

    /// The hash of the line it was read from.
    pub fn line(&self) -> u64 {
        self.held.line
    }
}

impl Devices {
    /// The device with ID `id`.
    pub fn get(&self, id: &str) -> Option<DeviceView<'_>> {
        let (id, held) = self.by_id.get_key_value(id)?;
        Some(DeviceView {
            id,
            held,
            symbols: &self.symbols,
        })
    }

    /// Whether there is a device `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Puts `record`, read from a line of hash `line`, in place of the
    /// device of its ID if there is one. Whether the device changed (or is
    /// new): a line written differently for the same device is no change.
    pub fn put(&mut self, record: &DeviceRecord, line: u64) -> bool {
        self.put_parts(record.id(), record.application(), || record.tags(), line)
    }

    /// [`Devices::put`] from the parts of a device (already valid: an ID
    /// and an application that parse, at most the platform's number of
    /// tags).
    pub fn put_parts<'t, I: Iterator<Item = (&'t str, &'t str)>>(
        &mut self,
        id: &str,
        application: &str,
        tags: impl Fn() -> I,
        line: u64,
    ) -> bool {
        if let Some(held) = self.by_id.get_mut(id) {
            held.line = line;
            let symbols = &self.symbols;
            let mut given = tags();
            let same = symbols.text(held.application) == application
                && held.tags.iter().all(|&(k, v)| {
                    given
                        .next()
                        .is_some_and(|(gk, gv)| symbols.text(k) == gk && symbols.text(v) == gv)
                })
                && given.next().is_none();
            if same {
                return false;
            }
            self.remove(id);
        }
        let application = self.symbols.take(application);
        *self.applications.entry(application).or_default() += 1;
        let tags = tags()
            .map(|(k, v)| (self.symbols.take(k), self.symbols.take(v)))
            .collect();
        self.by_id.insert(
            id.into(),
            Held {
                application,
                tags,
                line,
            },
        );
        true
    }

    /// Adds a device that is not there yet (at start: no comparison, two
    /// look-ups); `false`, and nothing done, if there is one of this ID.
    pub fn insert_new<'t, I: Iterator<Item = (&'t str, &'t str)>>(
        &mut self,
        id: &str,
        application: &str,
        tags: impl Fn() -> I,
        line: u64,
    ) -> bool {
        if self.by_id.contains_key(id) {
            return false;
        }
        let symbols = &mut self.symbols;
        let application = symbols.take(application);
        *self.applications.entry(application).or_default() += 1;
        let tags = tags()
            .map(|(k, v)| (symbols.take(k), symbols.take(v)))
            .collect();
        self.by_id.insert(
            id.into(),
            Held {
                application,
                tags,
                line,
            },
        );
        true
    }

    /// Removes the device `id`; whether there was one.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(held) = self.by_id.remove(id) else {
            return false;
        };
        if let Some(count) = self.applications.get_mut(&held.application) {
            *count -= 1;
            if *count == 0 {
                self.applications.remove(&held.application);
            }
        }
        self.symbols.give_back(held.application);
        for &(k, v) in &held.tags {
            self.symbols.give_back(k);
            self.symbols.give_back(v);
        }
        true
    }

    /// The number of devices.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every device, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = DeviceView<'_>> {
        self.by_id.iter().map(|(id, held)| DeviceView {
            id,
            held,
            symbols: &self.symbols,
        })
    }

    /// The applications of the devices, each with how many devices it has.
    pub fn applications(&self) -> impl Iterator<Item = (&str, usize)> {
        self.applications
            .iter()
            .map(|(&symbol, &count)| (self.symbols.text(symbol), count))
    }

    /// The number of distinct strings held (applications, tag keys and
    /// values).
    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, app: &str, tags: &[(&str, &str)]) -> DeviceRecord {
        tags.iter().fold(
            DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap()),
            |d, (k, v)| d.with_tag(k, v),
        )
    }

    #[test]
    fn devices_read_back_as_they_were_put_and_symbols_are_shared_then_freed() {
        let mut devices = Devices::default();
        let truck = record("t1", "app-a", &[("vehicle", "truck"), ("site", "north")]);
        assert!(devices.put(&truck, 1));
        assert!(devices.put(&record("t2", "app-a", &[("vehicle", "truck")]), 2));
        assert!(devices.put(&record("b1", "app-b", &[]), 3));
        // app-a, app-b, vehicle, truck, site, north: each once.
        assert_eq!(devices.symbol_count(), 6);
        let view = devices.get("t1").unwrap();
        assert!(view.is(&truck));
        assert_eq!(view.to_record().unwrap(), truck);
        assert_eq!(view.application(), "app-a");
        assert_eq!(view.line(), 1);
        let mut apps: Vec<_> = devices.applications().collect();
        apps.sort();
        assert_eq!(apps, [("app-a", 2), ("app-b", 1)]);

        // The same device from another line: no change, the line is kept.
        assert!(!devices.put(&truck, 9));
        assert_eq!(devices.get("t1").unwrap().line(), 9);
        // Retagged: a change; `north` and `site` are no longer used.
        assert!(devices.put(&record("t1", "app-a", &[("vehicle", "car")]), 10));
        assert_eq!(devices.symbol_count(), 5);
        assert!(devices.remove("b1"));
        assert!(!devices.remove("b1"));
        assert_eq!(devices.symbol_count(), 4);
        assert_eq!(devices.applications().count(), 1);
        // A freed symbol's slot is used again.
        assert!(devices.put(&record("b2", "app-c", &[]), 11));
        assert_eq!(devices.get("b2").unwrap().application(), "app-c");
        assert_eq!(devices.len(), 3);
        let t1 = devices.get("t1").unwrap();
        let tags: Vec<_> = t1.tags().collect();
        assert_eq!(tags, [("vehicle", "car")]);
    }

    #[test]
    fn a_view_is_seen_as_its_record_is() {
        let trucks: structure_access::Restriction = "vehicle=truck".parse().unwrap();
        let mut devices = Devices::default();
        devices.put(&record("t1", "app-a", &[("vehicle", "truck")]), 1);
        devices.put(&record("c1", "app-a", &[("vehicle", "car")]), 2);
        assert!(trucks.can_see(&devices.get("t1").unwrap()));
        assert!(!trucks.can_see(&devices.get("c1").unwrap()));
    }
}
