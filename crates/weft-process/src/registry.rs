//! The table of functions a worker may run, keyed by a stable name.
//!
//! [`register!`](crate::register) adds an [`Entry`] to a link-time
//! distributed slice ([`linkme`]): no constructor runs to fill it, so it is
//! complete even before `main` (when the init hook starts worker mode). The
//! parent finds an entry by the `TypeId` of the function item it was given;
//! the wire carries only the entry's name (`module_path!()::fn_name`), never
//! a code address.

use std::any::{Any, TypeId, type_name};
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::errtext;
use crate::wire::{ErrKind, ItemOut};

/// One registered function. Built by [`register!`](crate::register); not
/// meant to be written by hand.
#[doc(hidden)]
pub struct Entry {
    /// `module_path!()::name`.
    pub name: &'static str,
    /// The `TypeId` of the function item's type.
    pub type_id: fn() -> TypeId,
    /// The function's signature, `fn(A) -> R`, as `type_name` spells it.
    pub signature: fn() -> &'static str,
    /// Runs the function over a batch of encoded arguments.
    pub run: fn(&mut Batch<'_>),
    /// Runs the function as a [`Process`](crate::Process)'s child: receives
    /// the argument, sends the outcome, gives the exit code.
    pub process: fn(crate::process::ChildIo) -> i32,
}

#[doc(hidden)]
#[linkme::distributed_slice]
pub static REGISTRY: [Entry];

/// A batch of encoded arguments and the results produced for it.
#[doc(hidden)]
pub struct Batch<'a> {
    pub(crate) args: &'a [u8],
    pub(crate) ends: &'a [u64],
    pub(crate) out: Vec<u8>,
    pub(crate) status: Vec<ItemOut>,
    /// The arguments with their channels, when they hold some (see
    /// `channel::carry`): decoded from there instead of from `args`.
    pub(crate) carrier: Option<ipc_channel::ipc::OpaqueIpcReceiver>,
    /// For each result that holds channels, by item: a carrier with that
    /// result and its channels (see `channel::carry`), which the parent
    /// decodes it from.
    pub(crate) result_carriers: Vec<(u32, ipc_channel::ipc::OpaqueIpcReceiver)>,
}

impl<'a> Batch<'a> {
    /// A batch whose results go to `status` and `out` (cleared), buffers
    /// that the worker reuses from job to job.
    pub(crate) fn new(
        args: &'a [u8],
        ends: &'a [u64],
        mut status: Vec<ItemOut>,
        mut out: Vec<u8>,
    ) -> Batch<'a> {
        status.clear();
        status.reserve(ends.len());
        out.clear();
        Batch {
            args,
            ends,
            out,
            status,
            carrier: None,
            result_carriers: Vec::new(),
        }
    }
}

/// `TypeId` of a value's type (used on function items).
#[doc(hidden)]
pub fn type_id_of<T: 'static>(_: &T) -> TypeId {
    TypeId::of::<T>()
}

/// The signature of a function item, as `fn(A) -> R`.
#[doc(hidden)]
pub fn signature_of<F, A, R>(_: &F) -> &'static str
where
    F: Fn(A) -> R,
{
    type_name::<fn(A) -> R>()
}

/// Runs `f` over each argument of `batch` (the body of every registered
/// function's entry).
#[doc(hidden)]
pub fn run_batch<F, A, R>(batch: &mut Batch<'_>, f: F)
where
    F: Fn(A) -> R,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    // Arguments that hold channels come, with them, from their carrier.
    let mut carried = batch.carrier.take().map(|rx| {
        let rx = rx.to::<crate::channel::Incoming<Vec<A>>>();
        let wait = crate::channel::Wait::For(std::time::Duration::from_secs(60));
        let n = batch.ends.len();
        let all_fail =
            |why: String| -> Vec<Result<A, String>> { (0..n).map(|_| Err(why.clone())).collect() };
        match crate::channel::recv_caught(&rx, wait) {
            Ok(items) if items.len() == n => items.into_iter().map(Ok).collect(),
            Ok(items) => all_fail(format!(
                "the job's carrier held {} arguments for {n}",
                items.len()
            )),
            Err(e) => all_fail(format!(
                "its arguments with their channels did not arrive: {e:?}"
            )),
        }
        .into_iter()
    });
    let mut start = 0usize;
    for &end in batch.ends {
        let end = end as usize;
        let Some(arg) = (start <= end).then(|| batch.args.get(start..end)).flatten() else {
            batch.status.push(ItemOut::Err(
                ErrKind::Serialization,
                "the job's argument offsets are out of bounds".into(),
            ));
            continue;
        };
        start = end;
        let mark = batch.out.len();
        let out = &mut batch.out;
        let from_carrier = carried.as_mut().map(Iterator::next);
        let mut met = 0;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let value: Result<A, String> = match from_carrier {
                Some(Some(value)) => value,
                Some(None) => Err("the job's carrier held too few arguments".into()),
                None => decode(arg),
            };
            let value: A = value.map_err(|e| {
                (
                    ErrKind::Serialization,
                    format!("the worker could not decode the argument: {e}"),
                )
            })?;
            let result = f(value);
            let (encoded, handles) = crate::channel::encode_counting(|| encode_into(result, out));
            met = handles;
            encoded.map_err(|e| {
                (
                    ErrKind::Serialization,
                    format!("the worker could not encode the result: {e}"),
                )
            })
        }));
        // A result's channels leave ipc-channel's per-thread stash at once,
        // in a carrier of their own: the next item's code may send on an
        // ipc-channel channel itself, which would take them along.
        let outcome = match outcome {
            Ok(Ok(())) if met > 0 => match crate::channel::carry(1, &batch.out[mark..]) {
                Ok(carrier) => {
                    batch
                        .result_carriers
                        .push((batch.status.len() as u32, carrier));
                    Ok(Ok(()))
                }
                Err(why) => Ok(Err((ErrKind::Serialization, why))),
            },
            Ok(Err(e)) if met > 0 => {
                crate::channel::discard_stash();
                Ok(Err(e))
            }
            other => other,
        };
        match outcome {
            Ok(Ok(())) => batch.status.push(ItemOut::Ok(batch.out.len() as u64)),
            Ok(Err((kind, msg))) => {
                batch.out.truncate(mark);
                batch.status.push(ItemOut::Err(kind, msg));
            }
            Err(payload) => {
                batch.out.truncate(mark);
                batch.status.push(ItemOut::Err(
                    ErrKind::Panicked,
                    weft_sync::into_panic_message(payload),
                ));
            }
        }
    }
}

/// Appends the encoding of `value` to `out`. A `Vec<u8>` is taken as is (no
/// serde pass over its bytes, and no copy at all when `out` is empty);
/// anything else is encoded with `postcard`. On error `out` is unchanged.
pub(crate) fn encode_into<T: Serialize + 'static>(
    value: T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut slot = Some(value);
    if let Some(bytes) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
        let bytes = bytes.take().unwrap_or_default();
        if out.is_empty() {
            *out = bytes;
        } else {
            out.extend_from_slice(&bytes);
        }
        return Ok(());
    }
    let Some(value) = slot else {
        return Err("internal: value already taken".into());
    };
    let mark = out.len();
    // The type's `Serialize` is user code: a panic in it fails this value
    // only, on whatever thread of the pool's it runs.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        postcard::to_io(&value, &mut *out).map(|_| ())
    }));
    let error = match outcome {
        Ok(Ok(_)) => {
            drop_quietly(value);
            return Ok(());
        }
        Ok(Err(postcard::Error::SerdeSerCustom)) => {
            // postcard keeps no text for the type's own error: run it again
            // without output to get it.
            let text = catch_unwind(AssertUnwindSafe(|| errtext::serialize_text(&value)))
                .ok()
                .flatten();
            let text = text.unwrap_or_else(|| postcard::Error::SerdeSerCustom.to_string());
            format!("`{}`'s Serialize failed: {text}", type_name::<T>())
        }
        Ok(Err(e)) => format!("`{}` could not be serialized: {e}", type_name::<T>()),
        Err(payload) => format!(
            "`{}`'s Serialize panicked: {}",
            type_name::<T>(),
            weft_sync::into_panic_message(payload)
        ),
    };
    out.truncate(mark);
    // The value may panic when dropped, too.
    drop_quietly(value);
    Err(error)
}

/// Drops a user value, catching a panic of its `Drop` (reported on
/// stderr): a pool's thread must not die of it.
pub(crate) fn drop_quietly<T>(value: T) {
    if let Some(message) = weft_sync::drop_quietly(value) {
        eprintln!(
            "weft-process: dropping a `{}` panicked (ignored): {message}",
            type_name::<T>()
        );
    }
}

/// Decodes a `T` with postcard, catching a panic of its `Deserialize`
/// and recovering the text of its own errors.
fn postcard_decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(|| postcard::from_bytes::<T>(bytes))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(postcard::Error::SerdeDeCustom)) => {
            let text = catch_unwind(AssertUnwindSafe(|| errtext::deserialize_text::<T>(bytes)))
                .ok()
                .flatten()
                .unwrap_or_else(|| postcard::Error::SerdeDeCustom.to_string());
            Err(format!(
                "`{}`'s Deserialize failed: {text}",
                type_name::<T>()
            ))
        }
        Ok(Err(e)) => Err(format!(
            "`{}` could not be deserialized: {e}",
            type_name::<T>()
        )),
        Err(payload) => Err(format!(
            "`{}`'s Deserialize panicked: {}",
            type_name::<T>(),
            weft_sync::into_panic_message(payload)
        )),
    }
}

/// Decodes a value written by [`encode_into`].
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, String> {
    let mut slot: Option<T> = None;
    if let Some(s) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
        let mut v = crate::worker::buffer_for(bytes.len());
        v.extend_from_slice(bytes);
        *s = Some(v);
        return slot.ok_or_else(|| "internal: no value".to_string());
    }
    postcard_decode(bytes)
}

/// [`decode`] from an owned buffer: a `Vec<u8>` is moved, not copied;
/// for any other type the buffer is handed back (to be reused).
pub(crate) fn decode_owned<T: DeserializeOwned + 'static>(
    bytes: Vec<u8>,
) -> (Result<T, String>, Option<Vec<u8>>) {
    let mut slot: Option<T> = None;
    if let Some(s) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
        *s = Some(bytes);
        return (slot.ok_or_else(|| "internal: no value".to_string()), None);
    }
    let value = postcard_decode(&bytes);
    (value, Some(bytes))
}

/// A small buffer for encoding a task's argument, reused by each thread
/// from task to task (see [`recycle`]).
pub(crate) fn small_buffer() -> Vec<u8> {
    SMALL.try_with(Cell::take).unwrap_or_default()
}

/// Gives a buffer back for [`small_buffer`] if it is small.
pub(crate) fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() > 0 && buf.capacity() <= crate::wire::INLINE_MAX {
        buf.clear();
        let _ = SMALL.try_with(|c| c.set(buf));
    }
}

thread_local! {
    static SMALL: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// FNV-1a: the tables are small and fixed, and their keys come from this
/// build only, so a fast hash is enough (SipHash would cost a visible part
/// of a tiny task's round trip).
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

fn by_type() -> &'static FnvMap<TypeId, &'static Entry> {
    static MAP: OnceLock<FnvMap<TypeId, &'static Entry>> = OnceLock::new();
    MAP.get_or_init(|| REGISTRY.iter().map(|e| ((e.type_id)(), e)).collect())
}

fn by_name() -> &'static FnvMap<&'static str, &'static Entry> {
    static MAP: OnceLock<FnvMap<&'static str, &'static Entry>> = OnceLock::new();
    MAP.get_or_init(|| REGISTRY.iter().map(|e| (e.name, e)).collect())
}

/// The entry registered for the function item type `F`.
pub(crate) fn lookup_type<F: 'static>() -> Option<&'static Entry> {
    by_type().get(&TypeId::of::<F>()).copied()
}

/// The entry registered under `name`.
pub(crate) fn lookup_name(name: &str) -> Option<&'static Entry> {
    by_name().get(name).copied()
}

/// A hash of every registered name and signature: equal in two processes
/// only if both were built from the same code.
pub(crate) fn fingerprint() -> u64 {
    static FP: OnceLock<u64> = OnceLock::new();
    *FP.get_or_init(|| {
        let mut rows: Vec<(&str, &str)> =
            REGISTRY.iter().map(|e| (e.name, (e.signature)())).collect();
        rows.sort_unstable();
        // FNV-1a: the same in every process, whatever the build's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, sig) in rows {
            for b in name.bytes().chain([0]).chain(sig.bytes()).chain([0]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    })
}

/// Appends the encoding of a job's argument end offsets to `out` (the
/// same bytes as `postcard` writes for a `Vec<u64>`: a varint count, then
/// one varint per offset), without an intermediate allocation.
pub(crate) fn encode_ends(ends: &[u64], out: &mut Vec<u8>) {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    varint(ends.len() as u64, out);
    for &e in ends {
        varint(e, out);
    }
}

/// Decodes what [`encode_ends`] wrote into `out` (cleared first), which
/// the worker reuses from job to job.
pub(crate) fn decode_ends(bytes: &[u8], out: &mut Vec<u64>) -> Result<(), String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes
                .split_first()
                .ok_or("the job's offsets are truncated")?;
            *bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("the job's offsets are malformed".into())
    }
    out.clear();
    let mut bytes = bytes;
    let count = varint(&mut bytes)?;
    // Each offset takes at least one byte: never reserve more than that.
    out.reserve(
        usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(bytes.len()),
    );
    for _ in 0..count {
        out.push(varint(&mut bytes)?);
    }
    if bytes.is_empty() {
        Ok(())
    } else {
        Err("the job's offsets have trailing bytes".into())
    }
}

/// The error message for a function that was not registered.
pub(crate) fn unregistered_message<F>() -> String {
    format!(
        "the function `{}` is not registered for process pools: add \
         `weft_process::register!(name);` next to its definition (closures and \
         generic functions cannot be registered)",
        type_name::<F>()
    )
}

/// Registers plain functions so that a [`ProcessPool`](crate::ProcessPool)
/// can run them in its workers.
///
/// Write it once, next to the function's definition (at module level, in
/// the same module). Each function must be a non-generic `fn(A) -> R` where
/// `A: Serialize + DeserializeOwned` and `R: Serialize + DeserializeOwned`
/// (take a tuple for several arguments). Workers find the function by the
/// stable name `module_path!()::name`, never by a code address.
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// fn add((a, b): (i32, i32)) -> i32 {
///     a + b
/// }
/// weft_process::register!(square, add);
/// ```
#[macro_export]
macro_rules! register {
    ($($f:ident),+ $(,)?) => {
        $(
            const _: () = {
                #[$crate::__private::linkme::distributed_slice($crate::__private::REGISTRY)]
                #[linkme(crate = $crate::__private::linkme)]
                static ENTRY: $crate::__private::Entry = $crate::__private::Entry {
                    name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!($f)),
                    type_id: || $crate::__private::type_id_of(&$f),
                    signature: || $crate::__private::signature_of(&$f),
                    run: |batch| $crate::__private::run_batch(batch, $f),
                    process: |io| $crate::__private::run_process(io, $f),
                };
            };
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_u8_is_taken_raw() {
        let mut out = Vec::new();
        encode_into(vec![1u8, 2, 3], &mut out).unwrap();
        assert_eq!(out, vec![1, 2, 3]);
        encode_into(vec![4u8], &mut out).unwrap();
        assert_eq!(out, vec![1, 2, 3, 4]);
        assert_eq!(decode::<Vec<u8>>(&out).unwrap(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn ends_are_encoded_as_postcard_does() {
        let ends = [0u64, 1, 127, 128, 300, u64::MAX];
        let mut enc = Vec::new();
        encode_ends(&ends, &mut enc);
        assert_eq!(enc, postcard::to_stdvec(&ends[..]).unwrap());
        let mut back = vec![9];
        decode_ends(&enc, &mut back).unwrap();
        assert_eq!(back, ends);
        assert!(decode_ends(&enc[..enc.len() - 1], &mut back).is_err());
        assert!(decode_ends(&[1, 0, 0], &mut back).is_err());
        assert!(decode_ends(&[0xff; 12], &mut back).is_err());
    }

    #[test]
    fn other_types_use_postcard() {
        let mut out = vec![9];
        encode_into((1u32, "hi".to_string()), &mut out).unwrap();
        assert_eq!(out[0], 9);
        let back: (u32, String) = decode(&out[1..]).unwrap();
        assert_eq!(back, (1, "hi".to_string()));
        assert!(decode::<String>(&[5, 0xff]).is_err());
    }
}
