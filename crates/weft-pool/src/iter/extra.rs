//! The rest of rayon's surface that ports reach for: `chain`, `flat_map`
//! and `flatten` (parallel inner iterators), `par_bridge`, `par_extend`,
//! and the outcome types of `try_for_each` / `try_reduce`.

use std::collections::LinkedList;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::plumbing::{Consumer, Folder, Reducer, in_worker};
use super::{IntoParallelIterator, ParallelIterator};

// -------------------------------------------------------------- chain

/// [`ParallelIterator::chain`]'s iterator: `a`'s items, then `b`'s.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Chain<A, B> {
    a: A,
    b: B,
}

impl<A, B> Chain<A, B> {
    pub(super) fn new(a: A, b: B) -> Self {
        Chain { a, b }
    }
}

impl<A, B> ParallelIterator for Chain<A, B>
where
    A: ParallelIterator,
    B: ParallelIterator<Item = A::Item>,
{
    type Item = A::Item;

    fn drive<C: Consumer<A::Item>>(self, consumer: C) -> C::Result {
        // The consumer is split where `a` ends: at its exact length when
        // known (the only case where a consumer needs the index, as when
        // `collect` writes in place), else anywhere.
        let at = self.a.opt_len().unwrap_or(0);
        let (lc, rc, reducer) = consumer.split_at(at);
        let (a, b) = (self.a, self.b);
        let (ra, rb) = in_worker(move || crate::join(move || a.drive(lc), move || b.drive(rc)));
        reducer.reduce(ra, rb)
    }

    fn opt_len(&self) -> Option<usize> {
        self.a.opt_len()?.checked_add(self.b.opt_len()?)
    }
}

// ----------------------------------------------------------- flat_map

/// [`ParallelIterator::flat_map`]'s iterator: the items of the parallel
/// iterators `f` returns, in order, each of them run in parallel too.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct FlatMap<I, F> {
    base: I,
    f: F,
}

impl<I, F> FlatMap<I, F> {
    pub(super) fn new(base: I, f: F) -> Self {
        FlatMap { base, f }
    }
}

impl<I, F, PI> ParallelIterator for FlatMap<I, F>
where
    I: ParallelIterator,
    F: Fn(I::Item) -> PI + Sync + Send,
    PI: IntoParallelIterator,
{
    type Item = PI::Item;

    fn drive<C: Consumer<PI::Item>>(self, consumer: C) -> C::Result {
        self.base.drive(FlatMapConsumer {
            base: consumer,
            f: &self.f,
        })
    }
}

struct FlatMapConsumer<'f, C, F> {
    base: C,
    f: &'f F,
}

impl<'f, T, PI, C, F> Consumer<T> for FlatMapConsumer<'f, C, F>
where
    C: Consumer<PI::Item>,
    F: Fn(T) -> PI + Sync,
    PI: IntoParallelIterator,
{
    type Folder = FlatMapFolder<'f, C, F, PI::Item>;
    type Reducer = C::Reducer;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, C::Reducer) {
        let (l, r, reducer) = self.base.split_at(index);
        (
            FlatMapConsumer { base: l, f: self.f },
            FlatMapConsumer { base: r, f: self.f },
            reducer,
        )
    }
    fn into_folder(self) -> Self::Folder {
        FlatMapFolder {
            base: self.base,
            f: self.f,
            done: None,
            item: PhantomData,
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

/// Keeps the consumer itself, not a folder: each item's inner iterator is
/// driven into a piece split off its front, and the pieces' results are
/// reduced in order. The outer iterator has no exact length, so the split
/// index is never looked at.
struct FlatMapFolder<'f, C: Consumer<U>, F, U> {
    base: C,
    f: &'f F,
    done: Option<(C::Result, C::Reducer)>,
    item: PhantomData<fn(U)>,
}

impl<'f, T, PI, C, F> Folder<T> for FlatMapFolder<'f, C, F, PI::Item>
where
    C: Consumer<PI::Item>,
    F: Fn(T) -> PI + Sync,
    PI: IntoParallelIterator,
{
    type Result = C::Result;

    fn consume(self, item: T) -> Self {
        let (head, rest, reducer) = self.base.split_at(0);
        let r = (self.f)(item).into_par_iter().drive(head);
        let done = match self.done {
            None => (r, reducer),
            Some((acc, prev)) => (prev.reduce(acc, r), reducer),
        };
        FlatMapFolder {
            base: rest,
            f: self.f,
            done: Some(done),
            item: PhantomData,
        }
    }
    fn complete(self) -> C::Result {
        let last = self.base.into_folder().complete();
        match self.done {
            None => last,
            Some((acc, reducer)) => reducer.reduce(acc, last),
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

// ---------------------------------------------------------- par_bridge

/// Turns a sequential iterator into a parallel one: rayon's
/// `par_bridge`. The pool's workers take its items one at a time, under a
/// lock, so the order of the items is lost (as with rayon's): use it for
/// sources that cannot be split (a channel, lines of a file) whose items
/// each carry real work.
pub trait ParallelBridge: Sized {
    /// The parallel iterator over this iterator's items.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// for i in 0..100u64 {
    ///     tx.send(i).unwrap();
    /// }
    /// drop(tx);
    /// let sum: u64 = rx.into_iter().par_bridge().map(|x| x * 2).sum();
    /// assert_eq!(sum, 9900);
    /// ```
    fn par_bridge(self) -> IterBridge<Self>;
}

impl<T> ParallelBridge for T
where
    T: Iterator + Send,
    T::Item: Send,
{
    fn par_bridge(self) -> IterBridge<Self> {
        IterBridge { iter: self }
    }
}

/// [`ParallelBridge::par_bridge`]'s iterator.
#[derive(Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct IterBridge<I> {
    iter: I,
}

impl<I> ParallelIterator for IterBridge<I>
where
    I: Iterator + Send,
    I::Item: Send,
{
    type Item = I::Item;

    fn drive<C: Consumer<I::Item>>(self, consumer: C) -> C::Result {
        let iter = Mutex::new(self.iter.fuse());
        in_worker(|| {
            let pieces = crate::current_num_threads();
            bridge_pieces(pieces, &iter, consumer)
        })
    }
}

/// Splits `consumer` into `pieces` parts, joined in a tree; each takes the
/// next item of the shared iterator until it runs dry (or the consumer is
/// full). A panic in the iterator's `next` poisons the lock; the other
/// pieces then stop, and the panic reaches the caller through `join`.
fn bridge_pieces<I, C>(pieces: usize, iter: &Mutex<std::iter::Fuse<I>>, consumer: C) -> C::Result
where
    I: Iterator + Send,
    I::Item: Send,
    C: Consumer<I::Item>,
{
    if pieces > 1 {
        let (lc, rc, reducer) = consumer.split_at(0);
        let half = pieces / 2;
        let (l, r) = crate::join(
            || bridge_pieces(half, iter, lc),
            || bridge_pieces(pieces - half, iter, rc),
        );
        return reducer.reduce(l, r);
    }
    let mut folder = consumer.into_folder();
    while !folder.full() {
        let next = match iter.lock() {
            Ok(mut it) => it.next(),
            // Another piece panicked in `next`: its panic is the one that
            // reaches the caller.
            Err(_) => None,
        };
        match next {
            Some(item) => folder = folder.consume(item),
            None => break,
        }
    }
    folder.complete()
}

// --------------------------------------------------------- par_extend

/// Extends a collection with the items of a parallel iterator: rayon's
/// `ParallelExtend`. The items are collected in parallel (in order, for
/// the ordered collections), then moved in.
pub trait ParallelExtend<T: Send> {
    /// Adds every item of `par_iter`.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let mut v = vec![0u32];
    /// v.par_extend((1..4u32).into_par_iter().map(|x| x * 10));
    /// assert_eq!(v, [0, 10, 20, 30]);
    /// ```
    fn par_extend<I>(&mut self, par_iter: I)
    where
        I: IntoParallelIterator<Item = T>;
}

impl<T: Send> ParallelExtend<T> for Vec<T> {
    fn par_extend<I>(&mut self, par_iter: I)
    where
        I: IntoParallelIterator<Item = T>,
    {
        let mut items: Vec<T> = par_iter.into_par_iter().collect();
        self.append(&mut items);
    }
}

/// Copies borrowed items in, as `Vec`'s `Extend<&T>` does.
impl<'a, T: Copy + Send + Sync + 'a> ParallelExtend<&'a T> for Vec<T> {
    fn par_extend<I>(&mut self, par_iter: I)
    where
        I: IntoParallelIterator<Item = &'a T>,
    {
        let mut items: Vec<T> = par_iter.into_par_iter().copied().collect();
        self.append(&mut items);
    }
}

/// `ParallelExtend` for the collections that extend from a `Vec` of items.
macro_rules! par_extend_via_vec {
    ($([$($gen:tt)*] $ty:ty, $item:ty;)*) => {$(
        impl<$($gen)*> ParallelExtend<$item> for $ty {
            fn par_extend<I>(&mut self, par_iter: I)
            where
                I: IntoParallelIterator<Item = $item>,
            {
                let items: Vec<$item> = par_iter.into_par_iter().collect();
                self.extend(items);
            }
        }
    )*};
}

par_extend_via_vec! {
    [K: Eq + std::hash::Hash + Send, V: Send, S: std::hash::BuildHasher]
        std::collections::HashMap<K, V, S>, (K, V);
    [K: Ord + Send, V: Send] std::collections::BTreeMap<K, V>, (K, V);
    [T: Eq + std::hash::Hash + Send, S: std::hash::BuildHasher]
        std::collections::HashSet<T, S>, T;
    [T: Ord + Send] std::collections::BTreeSet<T>, T;
    [T: Send] std::collections::VecDeque<T>, T;
    [] String, char;
    [] String, String;
    ['a] String, &'a str;
}

// ------------------------------------------------------- try outcomes

/// What `try_for_each` and `try_reduce` accept as an outcome: `Result`
/// and `Option` (rayon uses the unstable `Try` trait for the same).
/// Implemented here for those two only.
pub trait TryOutcome: Sized {
    /// The value on success (`T` of `Result<T, E>` or `Option<T>`).
    type Output;
    /// What a failure carries (`Result<Infallible, E>`, or `None`).
    type Residual: Send;

    /// Splits into the value or the failure.
    fn branch(self) -> Result<Self::Output, Self::Residual>;
    /// A success holding `output`.
    fn from_output(output: Self::Output) -> Self;
    /// The failure `residual` stands for.
    fn from_residual(residual: Self::Residual) -> Self;
}

impl<T, E: Send> TryOutcome for Result<T, E> {
    type Output = T;
    type Residual = E;
    fn branch(self) -> Result<T, E> {
        self
    }
    fn from_output(output: T) -> Self {
        Ok(output)
    }
    fn from_residual(residual: E) -> Self {
        Err(residual)
    }
}

impl<T> TryOutcome for Option<T> {
    type Output = T;
    type Residual = ();
    fn branch(self) -> Result<T, ()> {
        self.ok_or(())
    }
    fn from_output(output: T) -> Self {
        Some(output)
    }
    fn from_residual((): ()) -> Self {
        None
    }
}

// ---------------------------------------------------------- try_reduce

/// `try_reduce`'s consumer: reduces the items' values with `op` until an
/// item or a reduction fails; then every piece stops (`full`).
pub(super) struct TryReduceConsumer<'f, ID, OP> {
    pub(super) identity: &'f ID,
    pub(super) op: &'f OP,
    pub(super) stop: &'f AtomicBool,
}

impl<ID, OP> Clone for TryReduceConsumer<'_, ID, OP> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<ID, OP> Copy for TryReduceConsumer<'_, ID, OP> {}

impl<'f, T, R, ID, OP> Consumer<R> for TryReduceConsumer<'f, ID, OP>
where
    R: TryOutcome<Output = T>,
    T: Send,
    ID: Fn() -> T + Sync,
    OP: Fn(T, T) -> R + Sync,
{
    type Folder = TryReduceFolder<'f, OP, T, R::Residual>;
    type Reducer = Self;
    type Result = Result<T, R::Residual>;

    fn split_at(self, _index: usize) -> (Self, Self, Self) {
        (self, self, self)
    }
    fn into_folder(self) -> Self::Folder {
        TryReduceFolder {
            acc: Ok((self.identity)()),
            op: self.op,
            stop: self.stop,
        }
    }
    fn full(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl<T, R, ID, OP> Reducer<Result<T, R::Residual>> for TryReduceConsumer<'_, ID, OP>
where
    R: TryOutcome<Output = T>,
    OP: Fn(T, T) -> R,
{
    fn reduce(
        self,
        left: Result<T, R::Residual>,
        right: Result<T, R::Residual>,
    ) -> Result<T, R::Residual> {
        match (left, right) {
            (Ok(a), Ok(b)) => try_op(self.op, self.stop, a, b),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }
}

/// `op(a, b)`, raising `stop` when it fails.
fn try_op<T, R, OP>(op: &OP, stop: &AtomicBool, a: T, b: T) -> Result<T, R::Residual>
where
    R: TryOutcome<Output = T>,
    OP: Fn(T, T) -> R,
{
    let r = op(a, b).branch();
    if r.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    r
}

pub(super) struct TryReduceFolder<'f, OP, T, E> {
    acc: Result<T, E>,
    op: &'f OP,
    stop: &'f AtomicBool,
}

impl<T, R, OP> Folder<R> for TryReduceFolder<'_, OP, T, R::Residual>
where
    R: TryOutcome<Output = T>,
    OP: Fn(T, T) -> R,
{
    type Result = Result<T, R::Residual>;

    fn consume(self, item: R) -> Self {
        let acc = match (self.acc, item.branch()) {
            (Ok(a), Ok(b)) => try_op(self.op, self.stop, a, b),
            (Err(e), _) | (_, Err(e)) => {
                self.stop.store(true, Ordering::Relaxed);
                Err(e)
            }
        };
        TryReduceFolder { acc, ..self }
    }
    fn complete(self) -> Self::Result {
        self.acc
    }
    fn full(&self) -> bool {
        self.acc.is_err() || self.stop.load(Ordering::Relaxed)
    }
}

// ------------------------------------------------- unzip, partition

/// Routes every item of `iter` into one of two `Vec`s with `route`, piece
/// by piece, and joins the pieces' `Vec`s in order (as lists, so that no
/// item is copied more than once before the final concatenation).
pub(super) fn split_two<I, A, B, F>(iter: I, route: F) -> (Vec<A>, Vec<B>)
where
    I: ParallelIterator,
    A: Send,
    B: Send,
    F: Fn(&mut Vec<A>, &mut Vec<B>, I::Item) + Sync + Send,
{
    let (la, lb) = iter
        .fold(
            || (Vec::new(), Vec::new()),
            |(mut a, mut b), item| {
                route(&mut a, &mut b, item);
                (a, b)
            },
        )
        .map(|(a, b)| (LinkedList::from([a]), LinkedList::from([b])))
        .reduce(
            || (LinkedList::new(), LinkedList::new()),
            |(mut a1, mut b1), (mut a2, mut b2)| {
                a1.append(&mut a2);
                b1.append(&mut b2);
                (a1, b1)
            },
        );
    (concat(la), concat(lb))
}

fn concat<T>(list: LinkedList<Vec<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(list.iter().map(Vec::len).sum());
    for mut v in list {
        out.append(&mut v);
    }
    out
}
