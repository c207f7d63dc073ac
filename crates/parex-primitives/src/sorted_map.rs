//! [`SortedMap`]: a map kept as one vector of entries in key order.
//!
//! A block's [`StateChanges`](crate::StateChanges) are built once, in key order, by the
//! engine's tail, then read in order (state roots, stores, comparisons, the bindings) and
//! rarely changed one key at a time. A `BTreeMap` of them cost a serial copy of every change
//! into fresh tree nodes at the end of each block (0.5–1.6 ms of a 10,000-transaction block,
//! on one thread); a sorted vector is the tail's own output, moved.
//!
//! Lookups are binary searches. Inserting or removing one key moves the entries after it, so
//! callers that add many keys to a large map gather them first and [`SortedMap::merge`] once.

use std::borrow::Borrow;
use std::fmt;

/// A map from `K` to `V` kept as a vector of `(key, value)` sorted by key, each key once.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SortedMap<K, V> {
    /// Strictly increasing by key.
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<K, V> SortedMap<K, V> {
    /// An empty map.
    pub const fn new() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The entries as a slice, in key order.
    pub fn as_slice(&self) -> &[(K, V)] {
        &self.entries
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// The map of `entries`, sorted by key; of a repeated key the last value is kept, as when
    /// inserting each in turn. Entries already in strictly increasing key order (as the
    /// engine's tail builds them) are taken as they are, after one pass to check.
    pub fn from_vec(mut entries: Vec<(K, V)>) -> Self {
        if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            return SortedMap { entries };
        }
        // Stable: equal keys keep their order, so the last of each run is the last given.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.reverse();
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        entries.reverse();
        SortedMap { entries }
    }

    /// Where `key` is, or where it would go.
    fn search<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.search(key).ok().map(|at| &self.entries[at].1)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.search(key) {
            Ok(at) => Some(&mut self.entries[at].1),
            Err(_) => None,
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.search(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaced. Moves every later entry when the
    /// key is new.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.search(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, value)),
            Err(at) => {
                self.entries.insert(at, (key, value));
                None
            }
        }
    }

    /// Takes `key` out; moves every later entry.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.search(key).ok().map(|at| self.entries.remove(at).1)
    }

    /// The value of `key`, inserted by `make` first if the key is missing.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let at = match self.search(&key) {
            Ok(at) => at,
            Err(at) => {
                self.entries.insert(at, (key, make()));
                at
            }
        };
        &mut self.entries[at].1
    }

    /// The value of `key`, inserted as `V::default()` first if the key is missing.
    pub fn get_or_insert_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.get_or_insert_with(key, V::default)
    }

    /// Folds `later` into this map in one pass over both: a key in one map only keeps its
    /// value, and a key in both gets `join(earlier value, later value)`.
    pub fn merge(&mut self, later: SortedMap<K, V>, mut join: impl FnMut(&mut V, V)) {
        if later.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = later;
            return;
        }
        let earlier = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(earlier.len() + later.len());
        let mut earlier = earlier.into_iter().peekable();
        let mut later = later.entries.into_iter().peekable();
        loop {
            let take_earlier = match (earlier.peek(), later.peek()) {
                (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => {
                        let (key, mut value) = earlier.next().expect("peeked");
                        let (_, next) = later.next().expect("peeked");
                        join(&mut value, next);
                        merged.push((key, value));
                        continue;
                    }
                },
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let entry = if take_earlier {
                earlier.next()
            } else {
                later.next()
            };
            merged.extend(entry);
        }
        self.entries = merged;
    }
}

/// As [`SortedMap::from_vec`]: of a repeated key the last value wins.
impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        SortedMap::from_vec(iter.into_iter().collect())
    }
}

/// Each entry inserted in turn (a later value of a key replaces an earlier one), in one
/// merge rather than one move of the tail per new key.
impl<K: Ord, V> Extend<(K, V)> for SortedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let later: SortedMap<K, V> = iter.into_iter().collect();
        self.merge(later, |earlier, later| *earlier = later);
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Ord + Borrow<Q>, Q: Ord + ?Sized, V> std::ops::Index<&Q> for SortedMap<K, V> {
    type Output = V;

    /// Panics when `key` is missing, as `BTreeMap`'s index does.
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry found for key")
    }
}

#[cfg(test)]
mod tests {
    use super::SortedMap;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        GetOrDefault(u8, u32),
        Extend(Vec<(u8, u32)>),
        Merge(Vec<(u8, u32)>),
        Retain(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let pairs = || proptest::collection::vec((0u8..32, any::<u32>()), 0..12);
        prop_oneof![
            (0u8..32, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u8..32).prop_map(Op::Remove),
            (0u8..32, any::<u32>()).prop_map(|(k, v)| Op::GetOrDefault(k, v)),
            pairs().prop_map(Op::Extend),
            pairs().prop_map(Op::Merge),
            (1u8..5).prop_map(Op::Retain),
        ]
    }

    proptest! {
        /// Every operation does to the sorted map what the same operation (or its
        /// `BTreeMap` equivalent) does to a `BTreeMap`, and the entries stay strictly sorted.
        #[test]
        fn behaves_as_a_btree_map(
            start in proptest::collection::vec((0u8..32, any::<u32>()), 0..24),
            ops in proptest::collection::vec(op(), 0..24),
        ) {
            let mut sorted: SortedMap<u8, u32> = start.iter().copied().collect();
            let mut tree: BTreeMap<u8, u32> = start.iter().copied().collect();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(sorted.insert(k, v), tree.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(sorted.remove(&k), tree.remove(&k)),
                    Op::GetOrDefault(k, v) => {
                        *sorted.get_or_insert_default(k) ^= v;
                        *tree.entry(k).or_default() ^= v;
                    }
                    Op::Extend(pairs) => {
                        sorted.extend(pairs.iter().copied());
                        tree.extend(pairs.iter().copied());
                    }
                    Op::Merge(pairs) => {
                        let later: SortedMap<u8, u32> = pairs.iter().copied().collect();
                        sorted.merge(later.clone(), |a, b| *a = a.wrapping_add(b));
                        for (k, v) in later {
                            let slot = tree.entry(k).or_default();
                            *slot = slot.wrapping_add(v);
                        }
                    }
                    Op::Retain(m) => {
                        sorted.retain(|k, _| k % m == 0);
                        tree.retain(|k, _| k % m == 0);
                    }
                }
                prop_assert!(sorted.as_slice().windows(2).all(|w| w[0].0 < w[1].0));
                let flat: Vec<(u8, u32)> = sorted.iter().map(|(k, v)| (*k, *v)).collect();
                let expected: Vec<(u8, u32)> = tree.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(flat, expected);
                for k in 0..32u8 {
                    prop_assert_eq!(sorted.get(&k), tree.get(&k));
                    prop_assert_eq!(sorted.contains_key(&k), tree.contains_key(&k));
                }
            }
        }

        /// A vector, sorted or not, with repeated keys or not, gives the map that inserting
        /// its entries in turn gives.
        #[test]
        fn from_vec_keeps_the_last_value_of_a_key(
            pairs in proptest::collection::vec((0u8..16, any::<u32>()), 0..24),
            presort in any::<bool>(),
        ) {
            let mut pairs = pairs;
            if presort {
                pairs.sort_by_key(|(k, _)| *k);
                pairs.dedup_by_key(|(k, _)| *k);
            }
            let mut tree = BTreeMap::new();
            for (k, v) in &pairs {
                tree.insert(*k, *v);
            }
            let map = SortedMap::from_vec(pairs);
            let flat: Vec<(u8, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(flat, tree.into_iter().collect::<Vec<_>>());
        }
    }
}
