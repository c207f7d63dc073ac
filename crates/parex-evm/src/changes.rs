//! The block tail: the executors' final values become the block's [`StateChanges`].
//!
//! The final values arrive in parts (see [`FinalState`]): one per Block-STM worker, one from
//! the sequential executor. The parts split the keys by hash, not by address, so one
//! account's storage is usually spread over every part; a block whose writes mostly land in
//! one contract (an ERC-20 token, an AMM pair) must still build that account on all threads.
//!
//! 1. **Pieces** (one thread per part): [`sorted_pieces`] sorts the part's keys through a
//!    narrow index, address first and slot last, and gathers each address's values into one
//!    [`Pending`] piece with its storage already in slot order. No hash map, no per-account
//!    sort.
//! 2. **Ranges** (one thread per range): [`address_ranges`] cuts the address space into one
//!    range per part; for its range, [`merge_pieces`] walks the parts' pieces in address
//!    order and joins the pieces of one address (each key is in exactly one part, so the
//!    storage runs are disjoint and a two-way merge keeps slot order), and
//!    [`account_change`] adds pre-block state where the block left a gap and drops storage a
//!    reset made stale.
//! 3. **Join**: the ranges, in address order, are appended into one vector, which becomes the
//!    block's [`StateChanges`] as it is (a sorted map over that vector: no tree to build).
//!
//! A small block (or a single part) takes the same steps on the calling thread, as one range.

use crate::task::{AccountValue, CodeValue, EvmKey, EvmValue, SlotValue, STORAGE_STALE};
use parex_blockstm::workers::on_workers;
use parex_blockstm::{prefetch, FinalState};
use parex_primitives::{
    AccountChange, AccountInfo, Address, Bytes, StateChanges, KECCAK_EMPTY, U256,
};
use parex_state::{StateError, StateViewRef};

/// A key's final value, as the executors return it.
type FinalEntry = (EvmKey, Option<EvmValue>);

/// What an address weighs against one storage slot when the tail cuts its ranges: building
/// an account's change costs about three slots' worth (estimated from phase timers on the
/// ERC-20 block: 0.1 µs an address; about 0.03 µs a slot of the token, merged from two parts
/// and built into its tree).
const ADDRESS_WEIGHT: usize = 3;

/// Below this many final values every part is sorted on the calling thread: spawning costs
/// more than it saves.
const PARALLEL_TAIL_MIN_ENTRIES: usize = 4_096;

/// What the block left at one address, before it becomes an [`AccountChange`].
#[derive(Default)]
struct Pending {
    account: Option<Option<AccountValue>>,
    code: Option<Option<CodeValue>>,
    /// In slot order.
    storage: Vec<(U256, SlotValue)>,
}

/// The block's state changes from its final values: the parts sorted on one thread each, then
/// the address space cut into as many ranges, each merged and built on a thread of its own.
pub(crate) fn state_changes<S: StateViewRef>(
    state: &S,
    final_state: FinalState<EvmKey, EvmValue>,
) -> Result<StateChanges, StateError> {
    let parts = final_state.parts.len();
    let parallel = parts > 1 && final_state.len() >= PARALLEL_TAIL_MIN_ENTRIES;
    let mut pieces = on_threads(final_state.parts, parallel, sorted_pieces)?;
    let ranges = address_ranges(&mut pieces, if parallel { parts } else { 1 });
    // The first range's vector has room for every range's changes: the others are appended
    // to it, and it becomes the block's changes as it is (in address order: the ranges are,
    // and so is each range's run).
    let room: usize = ranges.iter().flatten().map(|part| part.len()).sum();
    let ranges: Vec<_> = ranges
        .into_iter()
        .enumerate()
        .map(|(at, range)| (range, if at == 0 { room } else { 0 }))
        .collect();
    let built = on_threads(ranges, parallel, |(range, room)| {
        built_changes(state, range, room)
    })?;
    let mut built = built.into_iter();
    let mut changes = built.next().transpose()?.unwrap_or_default();
    for range in built {
        changes.extend(range?);
    }
    // Already in address order: taken as it is, after one pass to check.
    Ok(StateChanges::from_vec(changes))
}

/// The changes of the addresses in `parts` (pieces sorted by address), in address order;
/// `room`: the least capacity of the returned vector.
fn built_changes<S: StateViewRef>(
    state: &S,
    parts: Vec<&mut [(Address, Pending)]>,
    room: usize,
) -> Result<Vec<(Address, AccountChange)>, StateError> {
    // Sized up front (at most one change a piece): a growing vector of wide entries copies
    // itself and faults in fresh pages at every doubling.
    let pieces = parts.iter().map(|part| part.len()).sum::<usize>();
    let mut changes = Vec::with_capacity(pieces.max(room));
    for (address, pending) in merge_pieces(parts) {
        changes.push(account_change(state, address, pending)?);
    }
    Ok(changes)
}

/// Cuts every part's pieces into `ranges` address ranges of about equal work, the same cuts
/// for every part: range `r` of every part holds the addresses between cut `r - 1` and cut
/// `r`. The cuts are the first part's weighted quantiles: the parts split keys by hash, so each
/// is a fair sample of the others. An address weighs [`ADDRESS_WEIGHT`] plus its slots, and a
/// cut falls before or after the piece that crosses a share, whichever lands nearer the share:
/// a token's 20,000 slots are one piece, and cutting after it when it comes late in address
/// order gave one range 8,000 addresses and the token, the other 1,900 addresses.
fn address_ranges(
    pieces: &mut [Vec<(Address, Pending)>],
    ranges: usize,
) -> Vec<Vec<&mut [(Address, Pending)]>> {
    let weight = |piece: &(Address, Pending)| ADDRESS_WEIGHT + piece.1.storage.len();
    let mut cuts: Vec<Address> = Vec::with_capacity(ranges.saturating_sub(1));
    if let Some(first) = pieces.first() {
        let total: usize = first.iter().map(weight).sum();
        let mut before = 0;
        let mut previous: Option<Address> = None;
        for piece in first {
            let after = before + weight(piece);
            // The shares this piece crosses (several, when it alone outweighs a range).
            while cuts.len() + 1 < ranges && after * ranges >= total * (cuts.len() + 1) {
                let share = total * (cuts.len() + 1) / ranges;
                let cut = match previous {
                    Some(previous) if share.saturating_sub(before) < after - share => previous,
                    _ => piece.0,
                };
                cuts.push(cut);
            }
            before = after;
            previous = Some(piece.0);
        }
    }
    let mut out: Vec<Vec<&mut [(Address, Pending)]>> = (0..ranges)
        .map(|_| Vec::with_capacity(pieces.len()))
        .collect();
    for part in pieces.iter_mut() {
        let mut rest: &mut [(Address, Pending)] = part;
        for (range, cut) in out.iter_mut().zip(cuts.iter()) {
            let at = rest.partition_point(|(address, _)| address <= cut);
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(at);
            range.push(head);
            rest = tail;
        }
        out[cuts.len()].push(rest);
    }
    out
}

/// Runs `work` on each input; with `parallel`, the first on the calling thread and each other
/// at the same time on a helper thread the calling thread keeps between blocks
/// ([`on_workers`]), else all on the calling thread. The results keep the input order.
fn on_threads<I: Send, O: Send>(
    inputs: Vec<I>,
    parallel: bool,
    work: impl Fn(I) -> O + Sync,
) -> Result<Vec<O>, StateError> {
    if !parallel {
        return Ok(inputs.into_iter().map(work).collect());
    }
    // Each worker takes its own input, once.
    let inputs: Vec<std::sync::Mutex<Option<I>>> = inputs
        .into_iter()
        .map(|input| std::sync::Mutex::new(Some(input)))
        .collect();
    on_workers(inputs.len(), |at| {
        let input = inputs[at].lock().ok().and_then(|mut slot| slot.take());
        input.map(&work)
    })
    .into_iter()
    .map(|output| match output {
        Ok(Some(output)) => Ok(output),
        _ => Err(StateError("state assembly panicked".into())),
    })
    .collect()
}

/// A key's place in the tail's order, as eight words compared in turn: the address (as three
/// big-endian words, the order of [`Address`]'s bytes), the kind (account, code, storage), the
/// slot (most significant limb first, the order of [`U256`]) and the key's index in its part.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Place([u64; 8]);

const ACCOUNT: u64 = 0;
const CODE: u64 = 1;
const STORAGE: u64 = 2;

impl Place {
    fn of(key: &EvmKey, index: usize) -> Option<Place> {
        let (address, kind, slot) = match key {
            EvmKey::Account(address) => (address, ACCOUNT, U256::ZERO),
            EvmKey::Code(address) => (address, CODE, U256::ZERO),
            EvmKey::Storage(address, slot) => (address, STORAGE, *slot),
            EvmKey::BlockHash(_) => return None,
        };
        let bytes = &address.0 .0;
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let tail = u32::from_be_bytes(bytes[16..20].try_into().unwrap_or_default()) as u64;
        let limbs = slot.as_limbs();
        Some(Place([
            word(0),
            word(8),
            tail << 32 | kind,
            limbs[3],
            limbs[2],
            limbs[1],
            limbs[0],
            index as u64,
        ]))
    }

    fn index(&self) -> usize {
        self.0[7] as usize
    }

    /// The address words: equal for every key of one address.
    fn address(&self) -> [u64; 3] {
        [self.0[0], self.0[1], self.0[2] >> 32]
    }

    fn kind(&self) -> u64 {
        self.0[2] & 0xffff_ffff
    }
}

/// One part's values gathered by address, in address order, each address's storage in slot
/// order.
fn sorted_pieces(mut part: Vec<FinalEntry>) -> Vec<(Address, Pending)> {
    let mut order: Vec<Place> = part
        .iter()
        .enumerate()
        .filter_map(|(index, (key, _))| Place::of(key, index))
        .collect();
    order.sort_unstable();
    // One piece an address, each run of storage sized up front: a run growing by doubling
    // (20,000 slots of a token) copied itself at every step and faulted in fresh pages.
    let runs: Vec<&[Place]> = order.chunk_by(|a, b| a.address() == b.address()).collect();
    let mut pieces: Vec<(Address, Pending)> = Vec::with_capacity(runs.len());
    // Where the run being gathered starts in `order`.
    let mut start = 0;
    for run in runs {
        let first = start;
        start += run.len();
        let Some(address) = part[run[0].index()].0.address() else {
            continue; // Never: block hashes are not placed.
        };
        let slots = run.iter().filter(|place| place.kind() == STORAGE).count();
        let mut pending = Pending {
            storage: Vec::with_capacity(slots),
            ..Pending::default()
        };
        for (offset, place) in run.iter().enumerate() {
            if let Some(ahead) = order.get(first + offset + PREFETCH_AHEAD) {
                prefetch(&part[ahead.index()]);
            }
            let (key, value) = &mut part[place.index()];
            let value = value.take();
            match *key {
                EvmKey::Account(_) => {
                    pending.account = Some(match value {
                        Some(EvmValue::Account(account)) => Some(account),
                        _ => None,
                    });
                }
                EvmKey::Code(_) => {
                    pending.code = Some(match value {
                        Some(EvmValue::Code(code)) => Some(code),
                        _ => None,
                    });
                }
                EvmKey::Storage(_, slot) => {
                    let value = match value {
                        Some(EvmValue::Storage(value)) => value,
                        _ => SlotValue {
                            value: U256::ZERO,
                            written_by: None,
                        },
                    };
                    pending.storage.push((slot, value));
                }
                EvmKey::BlockHash(_) => {} // Never placed.
            }
        }
        pieces.push((address, pending));
    }
    pieces
}

/// How many keys ahead the gather asks for the value it will take: the part is walked in
/// address order, which is random in memory.
const PREFETCH_AHEAD: usize = 8;

/// The parts' pieces in address order, the pieces of one address joined. Each part is sorted
/// by address; the pieces are taken out of it.
fn merge_pieces(
    parts: Vec<&mut [(Address, Pending)]>,
) -> impl Iterator<Item = (Address, Pending)> + '_ {
    let mut heads: Vec<std::iter::Peekable<std::slice::IterMut<'_, (Address, Pending)>>> = parts
        .into_iter()
        .map(|part| part.iter_mut().peekable())
        .collect();
    std::iter::from_fn(move || {
        let address = heads
            .iter_mut()
            .filter_map(|head| head.peek().map(|(address, _)| *address))
            .min()?;
        let mut joined: Option<Pending> = None;
        for head in heads.iter_mut() {
            if let Some((_, piece)) = head.next_if(|(next, _)| *next == address) {
                let piece = std::mem::take(piece);
                joined = Some(match joined {
                    None => piece,
                    Some(so_far) => join(so_far, piece),
                });
            }
        }
        joined.map(|pending| (address, pending))
    })
}

/// Two pieces of one address from different parts: their keys are disjoint.
fn join(a: Pending, b: Pending) -> Pending {
    Pending {
        account: a.account.or(b.account),
        code: a.code.or(b.code),
        storage: merge_by_slot(a.storage, b.storage),
    }
}

/// Merges two runs sorted by slot (and disjoint) into one.
fn merge_by_slot(a: Vec<(U256, SlotValue)>, b: Vec<(U256, SlotValue)>) -> Vec<(U256, SlotValue)> {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while let (Some((x, _)), Some((y, _))) = (a.peek(), b.peek()) {
        let next = if x < y { a.next() } else { b.next() };
        merged.extend(next);
    }
    merged.extend(a);
    merged.extend(b);
    merged
}

fn account_change<S: StateViewRef>(
    state: &S,
    address: Address,
    pending: Pending,
) -> Result<(Address, AccountChange), StateError> {
    // Pre-block state is needed for an account the block did not write, and for the code hash
    // of an account with code whose code the block did not change. An account without code
    // needs none: giving an account code, or taking it away, also writes its `has_code`.
    let needs_base = match (&pending.account, &pending.code) {
        (None, _) => true,
        (Some(Some(account)), None) => account.has_code,
        (Some(_), _) => false,
    };
    let base = if needs_base {
        state.account(&address)?
    } else {
        None
    };
    let account = match pending.account {
        Some(account) => account,
        None => base.map(|info| AccountValue {
            balance: info.balance,
            nonce: info.nonce,
            storage_reset: None,
            has_code: crate::task::has_code(info.code_hash),
        }),
    };
    let Some(account) = account else {
        // Deleted (or never came to exist): storage goes with it.
        return Ok((address, AccountChange::deleted()));
    };
    let (code_hash, code) = match &pending.code {
        Some(Some(code)) => (code.hash, Some(code.bytecode.original_bytes())),
        Some(None) => (KECCAK_EMPTY, Some(Bytes::new())),
        None if account.has_code => (base.map_or(KECCAK_EMPTY, |info| info.code_hash), None),
        None => (KECCAK_EMPTY, None),
    };
    debug_assert!(pending.storage.is_sorted_by_key(|(slot, _)| *slot));
    // In slot order, and collected in place: the map takes the vector as it is.
    let storage = pending
        .storage
        .into_iter()
        .filter(|(_, slot)| match account.storage_reset {
            None => true,
            Some(STORAGE_STALE) => false,
            Some(reset) => slot.written_by.is_some_and(|w| w >= reset),
        })
        .map(|(slot, value)| (slot, value.value))
        .collect();
    Ok((
        address,
        AccountChange {
            info: Some(AccountInfo {
                balance: account.balance,
                nonce: account.nonce,
                code_hash,
            }),
            code,
            storage_cleared: account.storage_reset.is_some(),
            storage,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(value: u64) -> SlotValue {
        SlotValue {
            value: U256::from(value),
            written_by: Some(0),
        }
    }

    /// The narrow order is the order of the block's changes: addresses bytewise, slots
    /// numerically (a slot's high limb decides first), account before code before storage.
    #[test]
    fn places_sort_as_addresses_then_kinds_then_slots() {
        let low = Address::with_last_byte(0xff);
        let high = Address::repeat_byte(0x01);
        let keys = [
            EvmKey::Storage(high, U256::from(1u64) << 200),
            EvmKey::Storage(high, U256::from(u64::MAX)),
            EvmKey::Code(high),
            EvmKey::Account(high),
            EvmKey::Storage(low, U256::from(7u64)),
            EvmKey::Account(low),
            EvmKey::BlockHash(3),
        ];
        let mut places: Vec<Place> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Place::of(k, i))
            .collect();
        places.sort_unstable();
        let order: Vec<usize> = places.iter().map(Place::index).collect();
        assert_eq!(order, vec![5, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn pieces_of_one_address_from_two_parts_join_in_slot_order() {
        let token = Address::repeat_byte(0x77);
        let other = Address::repeat_byte(0x11);
        let value = |v: u64| Some(EvmValue::Storage(slot(v)));
        let part_a = vec![
            (EvmKey::Storage(token, U256::from(9u64)), value(90)),
            (EvmKey::Storage(token, U256::from(2u64)), value(20)),
            (EvmKey::Account(other), None),
        ];
        let part_b = vec![
            (EvmKey::Storage(token, U256::from(5u64)), value(50)),
            (EvmKey::Storage(other, U256::from(1u64)), value(10)),
        ];
        let mut pieces = [sorted_pieces(part_a), sorted_pieces(part_b)];
        let merged: Vec<(Address, Pending)> =
            merge_pieces(pieces.iter_mut().map(Vec::as_mut_slice).collect()).collect();
        let addresses: Vec<Address> = merged.iter().map(|(a, _)| *a).collect();
        assert_eq!(addresses, vec![other, token]);
        let token_slots: Vec<(u64, u64)> = merged[1]
            .1
            .storage
            .iter()
            .map(|(s, v)| (s.to::<u64>(), v.value.to::<u64>()))
            .collect();
        assert_eq!(token_slots, vec![(2, 20), (5, 50), (9, 90)]);
        assert_eq!(merged[0].1.account, Some(None));
        assert_eq!(merged[0].1.storage.len(), 1);
    }

    /// A piece that outweighs a share is left out of the range it would overfill: a token
    /// late in address order goes with the few addresses after it, not the many before.
    #[test]
    fn a_heavy_piece_goes_to_the_range_it_balances() {
        let address = |i: u64| {
            let mut bytes = [0u8; 20];
            bytes[..8].copy_from_slice(&i.to_be_bytes());
            Address::from(bytes)
        };
        let piece = |i: u64, slots: usize| {
            let pending = Pending {
                storage: (0..slots as u64)
                    .map(|s| (U256::from(s), slot(s)))
                    .collect(),
                ..Pending::default()
            };
            (address(i), pending)
        };
        let mut part: Vec<(Address, Pending)> = (0..8_000).map(|i| piece(i, 0)).collect();
        part.push(piece(8_000, 20_000));
        part.extend((8_001..9_901).map(|i| piece(i, 0)));
        let mut pieces = vec![part];
        let ranges = address_ranges(&mut pieces, 2);
        let lens: Vec<usize> = ranges.iter().map(|range| range[0].len()).collect();
        assert_eq!(lens, vec![8_000, 1_901]);
        // Three ranges (shares of 16,568 weight): two cuts among the addresses before the
        // token, the token again with the addresses after it.
        let ranges = address_ranges(&mut pieces, 3);
        let lens: Vec<usize> = ranges.iter().map(|range| range[0].len()).collect();
        assert_eq!(lens, vec![5_522, 2_478, 1_901]);
        assert_eq!(ranges[2][0][0].0, address(8_000));
    }

    /// A block's final values over many addresses, one of them (a token) holding most of the
    /// slots, with deleted slots and accounts, a reset account whose older slots are stale, and
    /// an address with storage but no account write (pre-block state fills it in).
    fn final_values() -> (parex_state::InMemoryState, Vec<FinalEntry>) {
        let mut state = parex_state::InMemoryState::new();
        let token = Address::repeat_byte(0x42);
        let untouched = Address::repeat_byte(0x43);
        state.insert_account(untouched, U256::from(5u64), 3, None);
        let account = |balance: u64, reset: Option<u32>| {
            Some(EvmValue::Account(AccountValue {
                balance: U256::from(balance),
                nonce: 1,
                storage_reset: reset,
                has_code: false,
            }))
        };
        let mut entries = vec![(EvmKey::Account(token), account(1, None))];
        for i in 0..6_000u64 {
            let value = (i % 7 != 0).then(|| EvmValue::Storage(slot(i)));
            entries.push((EvmKey::Storage(token, U256::from(i * 0x1_0000_0001)), value));
        }
        for i in 0..3_000u64 {
            let mut bytes = [0u8; 20];
            bytes[..8].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
            let address = Address::from(bytes);
            let value = (i % 11 != 0).then(|| account(i, (i % 13 == 0).then_some(1)));
            entries.push((EvmKey::Account(address), value.flatten()));
            if i % 5 == 0 {
                let written = SlotValue {
                    value: U256::from(i),
                    written_by: Some((i % 3) as u32),
                };
                entries.push((
                    EvmKey::Storage(address, U256::from(i)),
                    Some(EvmValue::Storage(written)),
                ));
            }
        }
        entries.push((
            EvmKey::Storage(untouched, U256::from(9u64)),
            Some(EvmValue::Storage(slot(9))),
        ));
        entries.push((EvmKey::BlockHash(7), None));
        (state, entries)
    }

    /// The parallel tail (parts on threads, address ranges on threads) builds exactly what
    /// one thread builds from one part, however the keys are dealt to parts.
    #[test]
    fn parts_on_threads_build_what_one_part_builds() {
        let (state, entries) = final_values();
        assert!(entries.len() >= PARALLEL_TAIL_MIN_ENTRIES);
        let one = state_changes(
            &state,
            FinalState {
                parts: vec![entries.clone()],
            },
        )
        .unwrap();
        assert_eq!(one[&Address::repeat_byte(0x42)].storage.len(), 6_000);
        assert_eq!(one[&Address::repeat_byte(0x43)].info.unwrap().nonce, 3);
        for parts in 2..=4 {
            let mut dealt: Vec<Vec<FinalEntry>> = vec![Vec::new(); parts];
            for (i, entry) in entries.iter().enumerate() {
                dealt[(i * 7 + i / 3) % parts].push(entry.clone());
            }
            let many = state_changes(&state, FinalState { parts: dealt }).unwrap();
            assert_eq!(many, one, "{parts} parts");
        }
    }
}
