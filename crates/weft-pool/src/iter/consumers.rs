//! The consumers behind `for_each`, `sum`, `product`, `reduce`, `count`
//! and the searches.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::plumbing::{Consumer, Folder, NoopReducer, Reducer};

// ------------------------------------------------------------ for_each

pub(super) struct ForEachConsumer<'f, F> {
    pub(super) op: &'f F,
}

impl<'f, T, F: Fn(T) + Sync> Consumer<T> for ForEachConsumer<'f, F> {
    type Folder = Self;
    type Reducer = NoopReducer;
    type Result = ();
    fn split_at(self, _index: usize) -> (Self, Self, NoopReducer) {
        (ForEachConsumer { op: self.op }, self, NoopReducer)
    }
    fn into_folder(self) -> Self {
        self
    }
}

impl<'f, T, F: Fn(T)> Folder<T> for ForEachConsumer<'f, F> {
    type Result = ();
    fn consume(self, item: T) -> Self {
        (self.op)(item);
        self
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        iter.into_iter().for_each(self.op);
        self
    }
    fn complete(self) {}
}

// ------------------------------------------------------- sum, product

/// `std::iter::Sum` of the items, piece by piece.
pub(super) struct SumConsumer<S>(PhantomData<fn() -> S>);

impl<S> SumConsumer<S> {
    pub(super) fn new() -> Self {
        SumConsumer(PhantomData)
    }
}

fn add<S: std::iter::Sum<S>>(a: S, b: S) -> S {
    [a, b].into_iter().sum()
}

impl<T, S> Consumer<T> for SumConsumer<S>
where
    S: Send + std::iter::Sum<T> + std::iter::Sum<S>,
{
    type Folder = SumFolder<S>;
    type Reducer = Self;
    type Result = S;
    fn split_at(self, _index: usize) -> (Self, Self, Self) {
        (Self::new(), Self::new(), Self::new())
    }
    fn into_folder(self) -> SumFolder<S> {
        SumFolder {
            sum: std::iter::empty::<T>().sum(),
        }
    }
}

impl<S: std::iter::Sum<S>> Reducer<S> for SumConsumer<S> {
    fn reduce(self, left: S, right: S) -> S {
        add(left, right)
    }
}

pub(super) struct SumFolder<S> {
    sum: S,
}

impl<T, S> Folder<T> for SumFolder<S>
where
    S: std::iter::Sum<T> + std::iter::Sum<S>,
{
    type Result = S;
    fn consume(self, item: T) -> Self {
        SumFolder {
            sum: add(self.sum, std::iter::once(item).sum()),
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        SumFolder {
            sum: add(self.sum, iter.into_iter().sum()),
        }
    }
    fn complete(self) -> S {
        self.sum
    }
}

/// `std::iter::Product` of the items, piece by piece.
pub(super) struct ProductConsumer<P>(PhantomData<fn() -> P>);

impl<P> ProductConsumer<P> {
    pub(super) fn new() -> Self {
        ProductConsumer(PhantomData)
    }
}

fn mul<P: std::iter::Product<P>>(a: P, b: P) -> P {
    [a, b].into_iter().product()
}

impl<T, P> Consumer<T> for ProductConsumer<P>
where
    P: Send + std::iter::Product<T> + std::iter::Product<P>,
{
    type Folder = ProductFolder<P>;
    type Reducer = Self;
    type Result = P;
    fn split_at(self, _index: usize) -> (Self, Self, Self) {
        (Self::new(), Self::new(), Self::new())
    }
    fn into_folder(self) -> ProductFolder<P> {
        ProductFolder {
            product: std::iter::empty::<T>().product(),
        }
    }
}

impl<P: std::iter::Product<P>> Reducer<P> for ProductConsumer<P> {
    fn reduce(self, left: P, right: P) -> P {
        mul(left, right)
    }
}

pub(super) struct ProductFolder<P> {
    product: P,
}

impl<T, P> Folder<T> for ProductFolder<P>
where
    P: std::iter::Product<T> + std::iter::Product<P>,
{
    type Result = P;
    fn consume(self, item: T) -> Self {
        ProductFolder {
            product: mul(self.product, std::iter::once(item).product()),
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        ProductFolder {
            product: mul(self.product, iter.into_iter().product()),
        }
    }
    fn complete(self) -> P {
        self.product
    }
}

// -------------------------------------------------------------- count

pub(super) struct CountConsumer;

impl<T> Consumer<T> for CountConsumer {
    type Folder = CountFolder;
    type Reducer = Self;
    type Result = usize;
    fn split_at(self, _index: usize) -> (Self, Self, Self) {
        (CountConsumer, CountConsumer, CountConsumer)
    }
    fn into_folder(self) -> CountFolder {
        CountFolder(0)
    }
}

impl Reducer<usize> for CountConsumer {
    fn reduce(self, left: usize, right: usize) -> usize {
        left + right
    }
}

pub(super) struct CountFolder(usize);

impl<T> Folder<T> for CountFolder {
    type Result = usize;
    fn consume(self, _item: T) -> Self {
        CountFolder(self.0 + 1)
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        CountFolder(self.0 + iter.into_iter().count())
    }
    fn complete(self) -> usize {
        self.0
    }
}

// ------------------------------------------------------------- reduce

pub(super) struct ReduceConsumer<'r, ID, OP> {
    pub(super) identity: &'r ID,
    pub(super) op: &'r OP,
}

impl<'r, ID, OP> Clone for ReduceConsumer<'r, ID, OP> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<'r, ID, OP> Copy for ReduceConsumer<'r, ID, OP> {}

impl<'r, T, ID, OP> Consumer<T> for ReduceConsumer<'r, ID, OP>
where
    T: Send,
    ID: Fn() -> T + Sync,
    OP: Fn(T, T) -> T + Sync,
{
    type Folder = ReduceFolder<'r, T, OP>;
    type Reducer = Self;
    type Result = T;
    fn split_at(self, _index: usize) -> (Self, Self, Self) {
        (self, self, self)
    }
    fn into_folder(self) -> Self::Folder {
        ReduceFolder {
            acc: (self.identity)(),
            op: self.op,
        }
    }
}

impl<'r, T, ID, OP: Fn(T, T) -> T> Reducer<T> for ReduceConsumer<'r, ID, OP> {
    fn reduce(self, left: T, right: T) -> T {
        (self.op)(left, right)
    }
}

pub(super) struct ReduceFolder<'r, T, OP> {
    acc: T,
    op: &'r OP,
}

impl<'r, T, OP: Fn(T, T) -> T> Folder<T> for ReduceFolder<'r, T, OP> {
    type Result = T;
    fn consume(self, item: T) -> Self {
        ReduceFolder {
            acc: (self.op)(self.acc, item),
            op: self.op,
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        ReduceFolder {
            acc: iter.into_iter().fold(self.acc, self.op),
            op: self.op,
        }
    }
    fn complete(self) -> T {
        self.acc
    }
}

pub(super) struct ReduceWithConsumer<'r, OP> {
    pub(super) op: &'r OP,
}

impl<'r, OP> Clone for ReduceWithConsumer<'r, OP> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<'r, OP> Copy for ReduceWithConsumer<'r, OP> {}

impl<'r, T, OP> Consumer<T> for ReduceWithConsumer<'r, OP>
where
    T: Send,
    OP: Fn(T, T) -> T + Sync,
{
    type Folder = ReduceWithFolder<'r, T, OP>;
    type Reducer = Self;
    type Result = Option<T>;
    fn split_at(self, _index: usize) -> (Self, Self, Self) {
        (self, self, self)
    }
    fn into_folder(self) -> Self::Folder {
        ReduceWithFolder {
            acc: None,
            op: self.op,
        }
    }
}

impl<'r, T, OP: Fn(T, T) -> T> Reducer<Option<T>> for ReduceWithConsumer<'r, OP> {
    fn reduce(self, left: Option<T>, right: Option<T>) -> Option<T> {
        match (left, right) {
            (Some(l), Some(r)) => Some((self.op)(l, r)),
            (l, None) => l,
            (None, r) => r,
        }
    }
}

pub(super) struct ReduceWithFolder<'r, T, OP> {
    acc: Option<T>,
    op: &'r OP,
}

impl<'r, T, OP: Fn(T, T) -> T> Folder<T> for ReduceWithFolder<'r, T, OP> {
    type Result = Option<T>;
    fn consume(self, item: T) -> Self {
        let acc = match self.acc {
            Some(a) => (self.op)(a, item),
            None => item,
        };
        ReduceWithFolder {
            acc: Some(acc),
            op: self.op,
        }
    }
    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        let iter = iter.into_iter();
        let acc = match self.acc {
            Some(a) => Some(iter.fold(a, self.op)),
            None => iter.reduce(self.op),
        };
        ReduceWithFolder { acc, op: self.op }
    }
    fn complete(self) -> Option<T> {
        self.acc
    }
}

// ------------------------------------------------------------ find_any

pub(super) struct FindAnyConsumer<'p, P> {
    pub(super) found: &'p AtomicBool,
    pub(super) predicate: &'p P,
}

impl<'p, P> Clone for FindAnyConsumer<'p, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<'p, P> Copy for FindAnyConsumer<'p, P> {}

impl<'p, T, P> Consumer<T> for FindAnyConsumer<'p, P>
where
    T: Send,
    P: Fn(&T) -> bool + Sync,
{
    type Folder = FindAnyFolder<'p, T, P>;
    type Reducer = FirstReducer;
    type Result = Option<T>;
    fn split_at(self, _index: usize) -> (Self, Self, FirstReducer) {
        (self, self, FirstReducer)
    }
    fn into_folder(self) -> Self::Folder {
        FindAnyFolder {
            item: None,
            consumer: self,
        }
    }
    fn full(&self) -> bool {
        self.found.load(Ordering::Relaxed)
    }
}

pub(super) struct FindAnyFolder<'p, T, P> {
    item: Option<T>,
    consumer: FindAnyConsumer<'p, P>,
}

impl<'p, T, P: Fn(&T) -> bool> Folder<T> for FindAnyFolder<'p, T, P> {
    type Result = Option<T>;
    fn consume(mut self, item: T) -> Self {
        if (self.consumer.predicate)(&item) {
            self.item = Some(item);
            self.consumer.found.store(true, Ordering::Relaxed);
        }
        self
    }
    fn complete(self) -> Option<T> {
        self.item
    }
    fn full(&self) -> bool {
        self.item.is_some() || self.consumer.found.load(Ordering::Relaxed)
    }
}

/// Keeps the left result if there is one: the first in order.
pub(super) struct FirstReducer;

impl<T> Reducer<Option<T>> for FirstReducer {
    fn reduce(self, left: Option<T>, right: Option<T>) -> Option<T> {
        left.or(right)
    }
}

// ---------------------------------------------------------- find_first

/// Searches positions `[lower, ..)`; `best` holds the lowest start of a
/// piece that found an item, so pieces starting after it stop.
pub(super) struct FindFirstConsumer<'p, P> {
    pub(super) lower: usize,
    pub(super) best: &'p AtomicUsize,
    pub(super) predicate: &'p P,
}

impl<'p, T, P> Consumer<T> for FindFirstConsumer<'p, P>
where
    T: Send,
    P: Fn(&T) -> bool + Sync,
{
    type Folder = FindFirstFolder<'p, T, P>;
    type Reducer = FirstReducer;
    type Result = Option<T>;
    fn split_at(self, index: usize) -> (Self, Self, FirstReducer) {
        let right = FindFirstConsumer {
            lower: self.lower + index,
            ..self
        };
        (self, right, FirstReducer)
    }
    fn into_folder(self) -> Self::Folder {
        FindFirstFolder {
            item: None,
            consumer: self,
        }
    }
    fn full(&self) -> bool {
        self.best.load(Ordering::Relaxed) < self.lower
    }
}

pub(super) struct FindFirstFolder<'p, T, P> {
    item: Option<T>,
    consumer: FindFirstConsumer<'p, P>,
}

impl<'p, T, P: Fn(&T) -> bool> Folder<T> for FindFirstFolder<'p, T, P> {
    type Result = Option<T>;
    fn consume(mut self, item: T) -> Self {
        if (self.consumer.predicate)(&item) {
            self.item = Some(item);
            self.consumer
                .best
                .fetch_min(self.consumer.lower, Ordering::Relaxed);
        }
        self
    }
    fn complete(self) -> Option<T> {
        self.item
    }
    fn full(&self) -> bool {
        self.item.is_some() || self.consumer.best.load(Ordering::Relaxed) < self.consumer.lower
    }
}
