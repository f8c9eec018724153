//! The adapters: each wraps the producer (when the count of items stays
//! exact and indexable) and/or the consumer (always possible).

use super::plumbing::{Consumer, Folder, Producer, ProducerCallback, bridge};
use super::{IndexedParallelIterator, ParallelIterator};

// ---------------------------------------------------------------- map

/// [`ParallelIterator::map`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Map<I, F> {
    base: I,
    f: F,
}

impl<I, F> Map<I, F> {
    pub(super) fn new(base: I, f: F) -> Self {
        Map { base, f }
    }
}

impl<I, F, R> ParallelIterator for Map<I, F>
where
    I: ParallelIterator,
    F: Fn(I::Item) -> R + Sync + Send,
    R: Send,
{
    type Item = R;

    fn drive<C: Consumer<R>>(self, consumer: C) -> C::Result {
        self.base.drive(MapConsumer {
            base: consumer,
            f: &self.f,
        })
    }

    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

impl<I, F, R> IndexedParallelIterator for Map<I, F>
where
    I: IndexedParallelIterator,
    F: Fn(I::Item) -> R + Sync + Send,
    R: Send,
{
    fn len(&self) -> usize {
        self.base.len()
    }

    fn with_producer<CB: ProducerCallback<R>>(self, callback: CB) -> CB::Output {
        struct Callback<'f, CB, F> {
            callback: CB,
            f: &'f F,
        }
        impl<'f, T, R, CB, F> ProducerCallback<T> for Callback<'f, CB, F>
        where
            CB: ProducerCallback<R>,
            F: Fn(T) -> R + Sync,
        {
            type Output = CB::Output;
            fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                self.callback.callback(MapProducer { base, f: self.f })
            }
        }
        self.base.with_producer(Callback {
            callback,
            f: &self.f,
        })
    }
}

struct MapProducer<'f, P, F> {
    base: P,
    f: &'f F,
}

impl<'f, P, F, R> Producer for MapProducer<'f, P, F>
where
    P: Producer,
    F: Fn(P::Item) -> R + Sync,
{
    type Item = R;
    type IntoIter = std::iter::Map<P::IntoIter, &'f F>;

    fn into_iter(self) -> Self::IntoIter {
        self.base.into_iter().map(self.f)
    }
    fn fold_rev<G: Folder<R>>(self, folder: G) -> G {
        self.base
            .fold_rev(MapFolder {
                base: folder,
                f: self.f,
            })
            .base
    }
    fn min_len(&self) -> usize {
        self.base.min_len()
    }
    fn max_len(&self) -> usize {
        self.base.max_len()
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.base.split_at(index);
        (
            MapProducer { base: l, f: self.f },
            MapProducer { base: r, f: self.f },
        )
    }
}

struct MapConsumer<'f, C, F> {
    base: C,
    f: &'f F,
}

impl<'f, T, R, C, F> Consumer<T> for MapConsumer<'f, C, F>
where
    C: Consumer<R>,
    F: Fn(T) -> R + Sync,
{
    type Folder = MapFolder<'f, C::Folder, F>;
    type Reducer = C::Reducer;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, C::Reducer) {
        let (l, r, reducer) = self.base.split_at(index);
        (
            MapConsumer { base: l, f: self.f },
            MapConsumer { base: r, f: self.f },
            reducer,
        )
    }
    fn into_folder(self) -> Self::Folder {
        MapFolder {
            base: self.base.into_folder(),
            f: self.f,
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

struct MapFolder<'f, C, F> {
    base: C,
    f: &'f F,
}

impl<'f, T, R, C, F> Folder<T> for MapFolder<'f, C, F>
where
    C: Folder<R>,
    F: Fn(T) -> R,
{
    type Result = C::Result;

    fn consume(self, item: T) -> Self {
        MapFolder {
            base: self.base.consume((self.f)(item)),
            f: self.f,
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        MapFolder {
            base: self.base.consume_iter(iter.into_iter().map(self.f)),
            f: self.f,
        }
    }
    fn complete(self) -> C::Result {
        self.base.complete()
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

// ------------------------------------------------------ copied, cloned

/// [`ParallelIterator::copied`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Copied<I> {
    base: I,
}

impl<I> Copied<I> {
    pub(super) fn new(base: I) -> Self {
        Copied { base }
    }
}

impl<'a, T, I> ParallelIterator for Copied<I>
where
    I: ParallelIterator<Item = &'a T>,
    T: 'a + Copy + Send + Sync,
{
    type Item = T;
    fn drive<C: Consumer<T>>(self, consumer: C) -> C::Result {
        Map::new(self.base, |x: &T| *x).drive(consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

impl<'a, T, I> IndexedParallelIterator for Copied<I>
where
    I: IndexedParallelIterator<Item = &'a T>,
    T: 'a + Copy + Send + Sync,
{
    fn len(&self) -> usize {
        self.base.len()
    }
    fn with_producer<CB: ProducerCallback<T>>(self, callback: CB) -> CB::Output {
        Map::new(self.base, |x: &T| *x).with_producer(callback)
    }
}

/// [`ParallelIterator::cloned`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Cloned<I> {
    base: I,
}

impl<I> Cloned<I> {
    pub(super) fn new(base: I) -> Self {
        Cloned { base }
    }
}

impl<'a, T, I> ParallelIterator for Cloned<I>
where
    I: ParallelIterator<Item = &'a T>,
    T: 'a + Clone + Send + Sync,
{
    type Item = T;
    fn drive<C: Consumer<T>>(self, consumer: C) -> C::Result {
        Map::new(self.base, T::clone).drive(consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

impl<'a, T, I> IndexedParallelIterator for Cloned<I>
where
    I: IndexedParallelIterator<Item = &'a T>,
    T: 'a + Clone + Send + Sync,
{
    fn len(&self) -> usize {
        self.base.len()
    }
    fn with_producer<CB: ProducerCallback<T>>(self, callback: CB) -> CB::Output {
        Map::new(self.base, T::clone).with_producer(callback)
    }
}

// ------------------------------------------------------------- filter

/// [`ParallelIterator::filter`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Filter<I, P> {
    base: I,
    predicate: P,
}

impl<I, P> Filter<I, P> {
    pub(super) fn new(base: I, predicate: P) -> Self {
        Filter { base, predicate }
    }
}

impl<I, P> ParallelIterator for Filter<I, P>
where
    I: ParallelIterator,
    P: Fn(&I::Item) -> bool + Sync + Send,
{
    type Item = I::Item;
    fn drive<C: Consumer<I::Item>>(self, consumer: C) -> C::Result {
        self.base.drive(FilterConsumer {
            base: consumer,
            predicate: &self.predicate,
        })
    }
}

struct FilterConsumer<'p, C, P> {
    base: C,
    predicate: &'p P,
}

impl<'p, T, C, P> Consumer<T> for FilterConsumer<'p, C, P>
where
    C: Consumer<T>,
    P: Fn(&T) -> bool + Sync,
{
    type Folder = FilterFolder<'p, C::Folder, P>;
    type Reducer = C::Reducer;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, C::Reducer) {
        let (l, r, reducer) = self.base.split_at(index);
        let p = self.predicate;
        (
            FilterConsumer {
                base: l,
                predicate: p,
            },
            FilterConsumer {
                base: r,
                predicate: p,
            },
            reducer,
        )
    }
    fn into_folder(self) -> Self::Folder {
        FilterFolder {
            base: self.base.into_folder(),
            predicate: self.predicate,
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

struct FilterFolder<'p, C, P> {
    base: C,
    predicate: &'p P,
}

impl<'p, T, C, P> Folder<T> for FilterFolder<'p, C, P>
where
    C: Folder<T>,
    P: Fn(&T) -> bool,
{
    type Result = C::Result;

    fn consume(self, item: T) -> Self {
        if (self.predicate)(&item) {
            FilterFolder {
                base: self.base.consume(item),
                predicate: self.predicate,
            }
        } else {
            self
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        let p = self.predicate;
        FilterFolder {
            base: self.base.consume_iter(iter.into_iter().filter(|x| p(x))),
            predicate: p,
        }
    }
    fn complete(self) -> C::Result {
        self.base.complete()
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

// --------------------------------------------------------- filter_map

/// [`ParallelIterator::filter_map`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct FilterMap<I, F> {
    base: I,
    f: F,
}

impl<I, F> FilterMap<I, F> {
    pub(super) fn new(base: I, f: F) -> Self {
        FilterMap { base, f }
    }
}

impl<I, F, R> ParallelIterator for FilterMap<I, F>
where
    I: ParallelIterator,
    F: Fn(I::Item) -> Option<R> + Sync + Send,
    R: Send,
{
    type Item = R;
    fn drive<C: Consumer<R>>(self, consumer: C) -> C::Result {
        self.base.drive(FilterMapConsumer {
            base: consumer,
            f: &self.f,
        })
    }
}

struct FilterMapConsumer<'f, C, F> {
    base: C,
    f: &'f F,
}

impl<'f, T, R, C, F> Consumer<T> for FilterMapConsumer<'f, C, F>
where
    C: Consumer<R>,
    F: Fn(T) -> Option<R> + Sync,
{
    type Folder = FilterMapFolder<'f, C::Folder, F>;
    type Reducer = C::Reducer;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, C::Reducer) {
        let (l, r, reducer) = self.base.split_at(index);
        (
            FilterMapConsumer { base: l, f: self.f },
            FilterMapConsumer { base: r, f: self.f },
            reducer,
        )
    }
    fn into_folder(self) -> Self::Folder {
        FilterMapFolder {
            base: self.base.into_folder(),
            f: self.f,
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

struct FilterMapFolder<'f, C, F> {
    base: C,
    f: &'f F,
}

impl<'f, T, R, C, F> Folder<T> for FilterMapFolder<'f, C, F>
where
    C: Folder<R>,
    F: Fn(T) -> Option<R>,
{
    type Result = C::Result;

    fn consume(self, item: T) -> Self {
        match (self.f)(item) {
            Some(r) => FilterMapFolder {
                base: self.base.consume(r),
                f: self.f,
            },
            None => self,
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        FilterMapFolder {
            base: self.base.consume_iter(iter.into_iter().filter_map(self.f)),
            f: self.f,
        }
    }
    fn complete(self) -> C::Result {
        self.base.complete()
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

// ------------------------------------------------------ flat_map_iter

/// [`ParallelIterator::flat_map_iter`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct FlatMapIter<I, F> {
    base: I,
    f: F,
}

impl<I, F> FlatMapIter<I, F> {
    pub(super) fn new(base: I, f: F) -> Self {
        FlatMapIter { base, f }
    }
}

impl<I, F, SI> ParallelIterator for FlatMapIter<I, F>
where
    I: ParallelIterator,
    F: Fn(I::Item) -> SI + Sync + Send,
    SI: IntoIterator,
    SI::Item: Send,
{
    type Item = SI::Item;
    fn drive<C: Consumer<SI::Item>>(self, consumer: C) -> C::Result {
        self.base.drive(FlatMapIterConsumer {
            base: consumer,
            f: &self.f,
        })
    }
}

struct FlatMapIterConsumer<'f, C, F> {
    base: C,
    f: &'f F,
}

impl<'f, T, SI, C, F> Consumer<T> for FlatMapIterConsumer<'f, C, F>
where
    C: Consumer<SI::Item>,
    F: Fn(T) -> SI + Sync,
    SI: IntoIterator,
{
    type Folder = FlatMapIterFolder<'f, C::Folder, F>;
    type Reducer = C::Reducer;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, C::Reducer) {
        let (l, r, reducer) = self.base.split_at(index);
        (
            FlatMapIterConsumer { base: l, f: self.f },
            FlatMapIterConsumer { base: r, f: self.f },
            reducer,
        )
    }
    fn into_folder(self) -> Self::Folder {
        FlatMapIterFolder {
            base: self.base.into_folder(),
            f: self.f,
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

struct FlatMapIterFolder<'f, C, F> {
    base: C,
    f: &'f F,
}

impl<'f, T, SI, C, F> Folder<T> for FlatMapIterFolder<'f, C, F>
where
    C: Folder<SI::Item>,
    F: Fn(T) -> SI,
    SI: IntoIterator,
{
    type Result = C::Result;

    fn consume(self, item: T) -> Self {
        FlatMapIterFolder {
            base: self.base.consume_iter((self.f)(item)),
            f: self.f,
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        FlatMapIterFolder {
            base: self.base.consume_iter(iter.into_iter().flat_map(self.f)),
            f: self.f,
        }
    }
    fn complete(self) -> C::Result {
        self.base.complete()
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

// --------------------------------------------------------------- fold

/// [`ParallelIterator::fold`]'s iterator: one accumulator per piece.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Fold<I, ID, F> {
    base: I,
    identity: ID,
    fold_op: F,
}

impl<I, ID, F> Fold<I, ID, F> {
    pub(super) fn new(base: I, identity: ID, fold_op: F) -> Self {
        Fold {
            base,
            identity,
            fold_op,
        }
    }
}

impl<U, I, ID, F> ParallelIterator for Fold<I, ID, F>
where
    I: ParallelIterator,
    F: Fn(U, I::Item) -> U + Sync + Send,
    ID: Fn() -> U + Sync + Send,
    U: Send,
{
    type Item = U;
    fn drive<C: Consumer<U>>(self, consumer: C) -> C::Result {
        self.base.drive(FoldConsumer {
            base: consumer,
            identity: &self.identity,
            fold_op: &self.fold_op,
        })
    }
}

struct FoldConsumer<'r, C, ID, F> {
    base: C,
    identity: &'r ID,
    fold_op: &'r F,
}

impl<'r, U, T, C, ID, F> Consumer<T> for FoldConsumer<'r, C, ID, F>
where
    C: Consumer<U>,
    F: Fn(U, T) -> U + Sync,
    ID: Fn() -> U + Sync,
    U: Send,
{
    type Folder = FoldFolder<'r, C::Folder, U, F>;
    type Reducer = C::Reducer;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, C::Reducer) {
        let (l, r, reducer) = self.base.split_at(index);
        (
            FoldConsumer { base: l, ..self },
            FoldConsumer { base: r, ..self },
            reducer,
        )
    }
    fn into_folder(self) -> Self::Folder {
        FoldFolder {
            base: self.base.into_folder(),
            acc: (self.identity)(),
            fold_op: self.fold_op,
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

struct FoldFolder<'r, C, U, F> {
    base: C,
    acc: U,
    fold_op: &'r F,
}

impl<'r, U, T, C, F> Folder<T> for FoldFolder<'r, C, U, F>
where
    C: Folder<U>,
    F: Fn(U, T) -> U,
{
    type Result = C::Result;

    fn consume(self, item: T) -> Self {
        FoldFolder {
            acc: (self.fold_op)(self.acc, item),
            ..self
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        let FoldFolder { base, acc, fold_op } = self;
        let acc = iter
            .into_iter()
            .take_while(|_| !base.full())
            .fold(acc, fold_op);
        FoldFolder { base, acc, fold_op }
    }
    fn complete(self) -> C::Result {
        self.base.consume(self.acc).complete()
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

// ---------------------------------------------------------- enumerate

/// [`IndexedParallelIterator::enumerate`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Enumerate<I> {
    base: I,
}

impl<I> Enumerate<I> {
    pub(super) fn new(base: I) -> Self {
        Enumerate { base }
    }
}

impl<I: IndexedParallelIterator> ParallelIterator for Enumerate<I> {
    type Item = (usize, I::Item);
    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        Some(self.base.len())
    }
}

impl<I: IndexedParallelIterator> IndexedParallelIterator for Enumerate<I> {
    fn len(&self) -> usize {
        self.base.len()
    }
    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        struct Callback<CB> {
            callback: CB,
        }
        impl<T, CB: ProducerCallback<(usize, T)>> ProducerCallback<T> for Callback<CB> {
            type Output = CB::Output;
            fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                self.callback
                    .callback(EnumerateProducer { base, offset: 0 })
            }
        }
        self.base.with_producer(Callback { callback })
    }
}

struct EnumerateProducer<P> {
    base: P,
    offset: usize,
}

impl<P: Producer> Producer for EnumerateProducer<P> {
    type Item = (usize, P::Item);
    type IntoIter = std::iter::Zip<std::ops::RangeFrom<usize>, P::IntoIter>;

    fn into_iter(self) -> Self::IntoIter {
        (self.offset..).zip(self.base.into_iter())
    }
    fn min_len(&self) -> usize {
        self.base.min_len()
    }
    fn max_len(&self) -> usize {
        self.base.max_len()
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.base.split_at(index);
        (
            EnumerateProducer {
                base: l,
                offset: self.offset,
            },
            EnumerateProducer {
                base: r,
                offset: self.offset + index,
            },
        )
    }
}

// ---------------------------------------------------------------- zip

/// [`IndexedParallelIterator::zip`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Zip<A, B> {
    a: A,
    b: B,
}

impl<A, B> Zip<A, B> {
    pub(super) fn new(a: A, b: B) -> Self {
        Zip { a, b }
    }
}

impl<A, B> ParallelIterator for Zip<A, B>
where
    A: IndexedParallelIterator,
    B: IndexedParallelIterator,
{
    type Item = (A::Item, B::Item);
    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        Some(self.len())
    }
}

impl<A, B> IndexedParallelIterator for Zip<A, B>
where
    A: IndexedParallelIterator,
    B: IndexedParallelIterator,
{
    fn len(&self) -> usize {
        self.a.len().min(self.b.len())
    }
    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        struct CallbackA<CB, B> {
            callback: CB,
            b: B,
        }
        impl<CB, ItemA, B> ProducerCallback<ItemA> for CallbackA<CB, B>
        where
            B: IndexedParallelIterator,
            CB: ProducerCallback<(ItemA, B::Item)>,
        {
            type Output = CB::Output;
            fn callback<PA: Producer<Item = ItemA>>(self, a: PA) -> CB::Output {
                self.b.with_producer(CallbackB {
                    callback: self.callback,
                    a,
                })
            }
        }
        struct CallbackB<CB, PA> {
            callback: CB,
            a: PA,
        }
        impl<CB, PA, ItemB> ProducerCallback<ItemB> for CallbackB<CB, PA>
        where
            PA: Producer,
            CB: ProducerCallback<(PA::Item, ItemB)>,
        {
            type Output = CB::Output;
            fn callback<PB: Producer<Item = ItemB>>(self, b: PB) -> CB::Output {
                self.callback.callback(ZipProducer { a: self.a, b })
            }
        }
        self.a.with_producer(CallbackA {
            callback,
            b: self.b,
        })
    }
}

struct ZipProducer<A, B> {
    a: A,
    b: B,
}

impl<A: Producer, B: Producer> Producer for ZipProducer<A, B> {
    type Item = (A::Item, B::Item);
    type IntoIter = std::iter::Zip<A::IntoIter, B::IntoIter>;

    fn into_iter(self) -> Self::IntoIter {
        self.a.into_iter().zip(self.b.into_iter())
    }
    fn min_len(&self) -> usize {
        self.a.min_len().max(self.b.min_len())
    }
    fn max_len(&self) -> usize {
        self.a.max_len().min(self.b.max_len())
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (al, ar) = self.a.split_at(index);
        let (bl, br) = self.b.split_at(index);
        (ZipProducer { a: al, b: bl }, ZipProducer { a: ar, b: br })
    }
}

// ------------------------------------------------------------- chunks

/// [`IndexedParallelIterator::chunks`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Chunks<I> {
    base: I,
    size: usize,
}

impl<I> Chunks<I> {
    pub(super) fn new(base: I, size: usize) -> Self {
        Chunks { base, size }
    }
}

impl<I: IndexedParallelIterator> ParallelIterator for Chunks<I> {
    type Item = Vec<I::Item>;
    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        Some(self.len())
    }
}

impl<I: IndexedParallelIterator> IndexedParallelIterator for Chunks<I> {
    fn len(&self) -> usize {
        self.base.len().div_ceil(self.size)
    }
    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        struct Callback<CB> {
            callback: CB,
            size: usize,
            len: usize,
        }
        impl<T, CB: ProducerCallback<Vec<T>>> ProducerCallback<T> for Callback<CB> {
            type Output = CB::Output;
            fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                self.callback.callback(ChunkProducer {
                    base,
                    size: self.size,
                    len: self.len,
                })
            }
        }
        let len = self.base.len();
        self.base.with_producer(Callback {
            callback,
            size: self.size,
            len,
        })
    }
}

struct ChunkProducer<P> {
    base: P,
    size: usize,
    /// Items of `base`.
    len: usize,
}

impl<P: Producer> Producer for ChunkProducer<P> {
    type Item = Vec<P::Item>;
    type IntoIter = ChunkIter<P::IntoIter>;

    fn into_iter(self) -> Self::IntoIter {
        ChunkIter {
            iter: self.base.into_iter(),
            size: self.size,
            left: self.len,
        }
    }
    fn min_len(&self) -> usize {
        self.base.min_len().div_ceil(self.size)
    }
    fn max_len(&self) -> usize {
        (self.base.max_len() / self.size).max(1)
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let at = index.saturating_mul(self.size).min(self.len);
        let (l, r) = self.base.split_at(at);
        (
            ChunkProducer {
                base: l,
                size: self.size,
                len: at,
            },
            ChunkProducer {
                base: r,
                size: self.size,
                len: self.len - at,
            },
        )
    }
}

/// The sequential side of [`Chunks`].
struct ChunkIter<I> {
    iter: I,
    size: usize,
    left: usize,
}

impl<I: Iterator> Iterator for ChunkIter<I> {
    type Item = Vec<I::Item>;
    fn next(&mut self) -> Option<Vec<I::Item>> {
        if self.left == 0 {
            return None;
        }
        let n = self.size.min(self.left);
        self.left -= n;
        let chunk: Vec<_> = self.iter.by_ref().take(n).collect();
        (!chunk.is_empty()).then_some(chunk)
    }
}

// ---------------------------------------------------- min_len, max_len

/// [`IndexedParallelIterator::with_min_len`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct MinLen<I> {
    base: I,
    min: usize,
}

impl<I> MinLen<I> {
    pub(super) fn new(base: I, min: usize) -> Self {
        MinLen { base, min }
    }
}

/// [`IndexedParallelIterator::with_max_len`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct MaxLen<I> {
    base: I,
    max: usize,
}

impl<I> MaxLen<I> {
    pub(super) fn new(base: I, max: usize) -> Self {
        MaxLen { base, max }
    }
}

/// `MinLen` and `MaxLen`: the base's items, with bounds for the bridge.
macro_rules! len_bounds {
    ($ty:ident, $field:ident, $min:expr, $max:expr) => {
        impl<I: IndexedParallelIterator> ParallelIterator for $ty<I> {
            type Item = I::Item;
            fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
                bridge(self, consumer)
            }
            fn opt_len(&self) -> Option<usize> {
                Some(self.base.len())
            }
        }

        impl<I: IndexedParallelIterator> IndexedParallelIterator for $ty<I> {
            fn len(&self) -> usize {
                self.base.len()
            }
            fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
                struct Callback<CB> {
                    callback: CB,
                    min: usize,
                    max: usize,
                }
                impl<T, CB: ProducerCallback<T>> ProducerCallback<T> for Callback<CB> {
                    type Output = CB::Output;
                    fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                        self.callback.callback(BoundsProducer {
                            base,
                            min: self.min,
                            max: self.max,
                        })
                    }
                }
                let $field = self.$field;
                self.base.with_producer(Callback {
                    callback,
                    min: $min,
                    max: $max,
                })
            }
        }
    };
}

len_bounds!(MinLen, min, min, usize::MAX);
len_bounds!(MaxLen, max, 1, max);

struct BoundsProducer<P> {
    base: P,
    min: usize,
    max: usize,
}

impl<P: Producer> Producer for BoundsProducer<P> {
    type Item = P::Item;
    type IntoIter = P::IntoIter;

    fn into_iter(self) -> P::IntoIter {
        self.base.into_iter()
    }
    fn min_len(&self) -> usize {
        self.base.min_len().max(self.min)
    }
    fn max_len(&self) -> usize {
        self.base.max_len().min(self.max)
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.base.split_at(index);
        let (min, max) = (self.min, self.max);
        (
            BoundsProducer { base: l, min, max },
            BoundsProducer { base: r, min, max },
        )
    }
    fn fold_with<F: Folder<P::Item>>(self, folder: F) -> F {
        self.base.fold_with(folder)
    }
    fn fold_rev<F: Folder<P::Item>>(self, folder: F) -> F {
        self.base.fold_rev(folder)
    }
}

// ---------------------------------------------------------------- rev

/// [`IndexedParallelIterator::rev`]'s iterator: the items last first.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Rev<I> {
    base: I,
}

impl<I> Rev<I> {
    pub(super) fn new(base: I) -> Self {
        Rev { base }
    }
}

impl<I: IndexedParallelIterator> ParallelIterator for Rev<I> {
    type Item = I::Item;
    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        Some(self.base.len())
    }
}

impl<I: IndexedParallelIterator> IndexedParallelIterator for Rev<I> {
    fn len(&self) -> usize {
        self.base.len()
    }
    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        struct Callback<CB> {
            callback: CB,
            len: usize,
        }
        impl<T, CB: ProducerCallback<T>> ProducerCallback<T> for Callback<CB> {
            type Output = CB::Output;
            fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                self.callback.callback(RevProducer {
                    base,
                    len: self.len,
                })
            }
        }
        let len = self.base.len();
        self.base.with_producer(Callback { callback, len })
    }
}

/// The base's `len` positions, last first: position `i` here is `len - 1
/// - i` of the base.
struct RevProducer<P> {
    base: P,
    len: usize,
}

impl<P: Producer> Producer for RevProducer<P> {
    type Item = P::Item;
    type IntoIter = std::iter::Rev<std::vec::IntoIter<P::Item>>;

    /// Gathers the piece first (only `zip` and `chunks` after `rev` ask
    /// for the iterator; folds go through [`fold_rev`](Producer::fold_rev)).
    fn into_iter(self) -> Self::IntoIter {
        let items: Vec<P::Item> = self.base.into_iter().collect();
        items.into_iter().rev()
    }
    fn min_len(&self) -> usize {
        self.base.min_len()
    }
    fn max_len(&self) -> usize {
        self.base.max_len()
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.base.split_at(self.len - index);
        (
            RevProducer {
                base: r,
                len: index,
            },
            RevProducer {
                base: l,
                len: self.len - index,
            },
        )
    }
    fn fold_with<F: Folder<P::Item>>(self, folder: F) -> F {
        self.base.fold_rev(folder)
    }
    fn fold_rev<F: Folder<P::Item>>(self, folder: F) -> F {
        self.base.fold_with(folder)
    }
}

// ------------------------------------------------------------ step_by

/// [`IndexedParallelIterator::step_by`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct StepBy<I> {
    base: I,
    step: usize,
}

impl<I> StepBy<I> {
    pub(super) fn new(base: I, step: usize) -> Self {
        StepBy { base, step }
    }
}

impl<I: IndexedParallelIterator> ParallelIterator for StepBy<I> {
    type Item = I::Item;
    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        Some(IndexedParallelIterator::len(self))
    }
}

impl<I: IndexedParallelIterator> IndexedParallelIterator for StepBy<I> {
    fn len(&self) -> usize {
        self.base.len().div_ceil(self.step)
    }
    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        struct Callback<CB> {
            callback: CB,
            step: usize,
            len: usize,
        }
        impl<T, CB: ProducerCallback<T>> ProducerCallback<T> for Callback<CB> {
            type Output = CB::Output;
            fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                self.callback.callback(StepByProducer {
                    base,
                    step: self.step,
                    len: self.len,
                })
            }
        }
        let (step, len) = (self.step, self.base.len());
        self.base.with_producer(Callback {
            callback,
            step,
            len,
        })
    }
}

/// Every `step`-th of the base's `len` positions, from its first.
struct StepByProducer<P> {
    base: P,
    step: usize,
    len: usize,
}

impl<P: Producer> Producer for StepByProducer<P> {
    type Item = P::Item;
    type IntoIter = std::iter::StepBy<P::IntoIter>;

    fn into_iter(self) -> Self::IntoIter {
        self.base.into_iter().step_by(self.step)
    }
    fn min_len(&self) -> usize {
        self.base.min_len().div_ceil(self.step)
    }
    fn max_len(&self) -> usize {
        (self.base.max_len() / self.step).max(1)
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let at = index.saturating_mul(self.step).min(self.len);
        let (l, r) = self.base.split_at(at);
        let step = self.step;
        (
            StepByProducer {
                base: l,
                step,
                len: at,
            },
            StepByProducer {
                base: r,
                step,
                len: self.len - at,
            },
        )
    }
}

// ------------------------------------------------------------ inspect

/// [`ParallelIterator::inspect`]'s iterator.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Inspect<I, F> {
    base: I,
    f: F,
}

impl<I, F> Inspect<I, F> {
    pub(super) fn new(base: I, f: F) -> Self {
        Inspect { base, f }
    }
}

impl<I, F> ParallelIterator for Inspect<I, F>
where
    I: ParallelIterator,
    F: Fn(&I::Item) + Sync + Send,
{
    type Item = I::Item;
    fn drive<C: Consumer<I::Item>>(self, consumer: C) -> C::Result {
        let f = &self.f;
        Map::new(self.base, move |x| {
            f(&x);
            x
        })
        .drive(consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

impl<I, F> IndexedParallelIterator for Inspect<I, F>
where
    I: IndexedParallelIterator,
    F: Fn(&I::Item) + Sync + Send,
{
    fn len(&self) -> usize {
        self.base.len()
    }
    fn with_producer<CB: ProducerCallback<I::Item>>(self, callback: CB) -> CB::Output {
        let f = &self.f;
        Map::new(self.base, move |x| {
            f(&x);
            x
        })
        .with_producer(callback)
    }
}

// --------------------------------------------------------- take, skip

/// [`IndexedParallelIterator::take`]'s and
/// [`IndexedParallelIterator::skip`]'s iterator: the items `[start, end)`
/// of `base`.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Range<I> {
    base: I,
    start: usize,
    end: usize,
}

impl<I: IndexedParallelIterator> Range<I> {
    /// The first `n` items (all if fewer).
    pub(super) fn take(base: I, n: usize) -> Self {
        let end = n.min(base.len());
        Range {
            base,
            start: 0,
            end,
        }
    }

    /// All but the first `n` items (none if fewer).
    pub(super) fn skip(base: I, n: usize) -> Self {
        let end = base.len();
        Range {
            base,
            start: n.min(end),
            end,
        }
    }
}

impl<I: IndexedParallelIterator> ParallelIterator for Range<I> {
    type Item = I::Item;
    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }
    fn opt_len(&self) -> Option<usize> {
        Some(self.end - self.start)
    }
}

impl<I: IndexedParallelIterator> IndexedParallelIterator for Range<I> {
    fn len(&self) -> usize {
        self.end - self.start
    }
    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        struct Callback<CB> {
            callback: CB,
            start: usize,
            end: usize,
        }
        impl<T, CB: ProducerCallback<T>> ProducerCallback<T> for Callback<CB> {
            type Output = CB::Output;
            fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                // The parts cut off are dropped here (a `Vec`'s items with
                // them).
                let (head, _) = base.split_at(self.end);
                let (_, range) = head.split_at(self.start);
                self.callback.callback(range)
            }
        }
        self.base.with_producer(Callback {
            callback,
            start: self.start,
            end: self.end,
        })
    }
}

// ----------------------------------------------------------- map_init

/// [`ParallelIterator::map_init`]'s iterator: `f(&mut state, item)`, with
/// one `state` made by `init` for each piece the work is split into.
#[derive(Clone, Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct MapInit<I, INIT, F> {
    base: I,
    init: INIT,
    f: F,
}

impl<I, INIT, F> MapInit<I, INIT, F> {
    pub(super) fn new(base: I, init: INIT, f: F) -> Self {
        MapInit { base, init, f }
    }
}

impl<I, INIT, T, F, R> ParallelIterator for MapInit<I, INIT, F>
where
    I: ParallelIterator,
    INIT: Fn() -> T + Sync + Send,
    F: Fn(&mut T, I::Item) -> R + Sync + Send,
    R: Send,
{
    type Item = R;
    fn drive<C: Consumer<R>>(self, consumer: C) -> C::Result {
        self.base.drive(MapInitConsumer {
            base: consumer,
            init: &self.init,
            f: &self.f,
        })
    }
    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

impl<I, INIT, T, F, R> IndexedParallelIterator for MapInit<I, INIT, F>
where
    I: IndexedParallelIterator,
    INIT: Fn() -> T + Sync + Send,
    F: Fn(&mut T, I::Item) -> R + Sync + Send,
    R: Send,
{
    fn len(&self) -> usize {
        self.base.len()
    }
    fn with_producer<CB: ProducerCallback<R>>(self, callback: CB) -> CB::Output {
        struct Callback<'f, CB, INIT, F> {
            callback: CB,
            init: &'f INIT,
            f: &'f F,
        }
        impl<'f, U, T, R, CB, INIT, F> ProducerCallback<U> for Callback<'f, CB, INIT, F>
        where
            CB: ProducerCallback<R>,
            INIT: Fn() -> T + Sync,
            F: Fn(&mut T, U) -> R + Sync,
        {
            type Output = CB::Output;
            fn callback<P: Producer<Item = U>>(self, base: P) -> CB::Output {
                self.callback.callback(MapInitProducer {
                    base,
                    init: self.init,
                    f: self.f,
                })
            }
        }
        self.base.with_producer(Callback {
            callback,
            init: &self.init,
            f: &self.f,
        })
    }
}

struct MapInitProducer<'f, P, INIT, F> {
    base: P,
    init: &'f INIT,
    f: &'f F,
}

impl<'f, P, INIT, T, F, R> Producer for MapInitProducer<'f, P, INIT, F>
where
    P: Producer,
    INIT: Fn() -> T + Sync,
    F: Fn(&mut T, P::Item) -> R + Sync,
{
    type Item = R;
    type IntoIter = MapInitIter<'f, P::IntoIter, T, F>;

    fn into_iter(self) -> Self::IntoIter {
        MapInitIter {
            iter: self.base.into_iter(),
            state: (self.init)(),
            f: self.f,
        }
    }
    fn min_len(&self) -> usize {
        self.base.min_len()
    }
    fn max_len(&self) -> usize {
        self.base.max_len()
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.base.split_at(index);
        (
            MapInitProducer { base: l, ..self },
            MapInitProducer { base: r, ..self },
        )
    }
}

/// The sequential side of [`MapInit`]: owns the piece's state.
struct MapInitIter<'f, I, T, F> {
    iter: I,
    state: T,
    f: &'f F,
}

impl<'f, I, T, F, R> Iterator for MapInitIter<'f, I, T, F>
where
    I: Iterator,
    F: Fn(&mut T, I::Item) -> R,
{
    type Item = R;
    fn next(&mut self) -> Option<R> {
        let x = self.iter.next()?;
        Some((self.f)(&mut self.state, x))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

struct MapInitConsumer<'f, C, INIT, F> {
    base: C,
    init: &'f INIT,
    f: &'f F,
}

impl<'f, U, T, R, C, INIT, F> Consumer<U> for MapInitConsumer<'f, C, INIT, F>
where
    C: Consumer<R>,
    INIT: Fn() -> T + Sync,
    F: Fn(&mut T, U) -> R + Sync,
{
    type Folder = MapInitFolder<'f, C::Folder, T, F>;
    type Reducer = C::Reducer;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, C::Reducer) {
        let (l, r, reducer) = self.base.split_at(index);
        (
            MapInitConsumer { base: l, ..self },
            MapInitConsumer { base: r, ..self },
            reducer,
        )
    }
    fn into_folder(self) -> Self::Folder {
        MapInitFolder {
            base: self.base.into_folder(),
            state: (self.init)(),
            f: self.f,
        }
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}

struct MapInitFolder<'f, C, T, F> {
    base: C,
    state: T,
    f: &'f F,
}

impl<'f, U, T, R, C, F> Folder<U> for MapInitFolder<'f, C, T, F>
where
    C: Folder<R>,
    F: Fn(&mut T, U) -> R,
{
    type Result = C::Result;

    fn consume(mut self, item: U) -> Self {
        let r = (self.f)(&mut self.state, item);
        MapInitFolder {
            base: self.base.consume(r),
            ..self
        }
    }
    fn consume_iter<I: IntoIterator<Item = U>>(self, iter: I) -> Self {
        let MapInitFolder { base, mut state, f } = self;
        let base = base.consume_iter(iter.into_iter().map(|x| f(&mut state, x)));
        MapInitFolder { base, state, f }
    }
    fn complete(self) -> C::Result {
        self.base.complete()
    }
    fn full(&self) -> bool {
        self.base.full()
    }
}
