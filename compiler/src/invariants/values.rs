//! The CEL values of the repository: maps ([`Record`]) and lists of them
//! ([`RecordList`]) that are handles — a table reference and ids — rather
//! than copies, so a list of 2 million edges costs 24 bytes an edge and a
//! comprehension binds an element without copying it.
//!
//! The interpreter hands values around as `dyn Val`, and only `'static`
//! types can be downcast; ours borrow the repository. Functions and the
//! counterexample search recover what a value stands for by indexing it
//! with [`Probe`], a key no expression can write, which only a [`Record`]
//! answers (with its [`Item`]).

use super::fields::{self, Item};
use super::tables::Tables;
use cel::ExecutionError;
use cel::common::traits::{self, Adder, Container, Indexer, Iterable, Sizer};
use cel::common::types::{self, CelInt, CelList, CelString, Kind, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use std::any::Any;
use std::sync::LazyLock;

static MAP: Type = types::MAP_TYPE;
static LIST: Type = types::LIST_TYPE;
static PROBE: Type = Type::new_unspecified_type("meshc.probe");

/// The key that asks a [`Record`] what it stands for.
#[derive(Debug)]
pub struct Probe;

impl Val for Probe {
    fn get_type(&self) -> &Type {
        &PROBE
    }
    fn cel_type() -> &'static Type {
        &PROBE
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(Probe)
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for Probe {}

/// A [`Record`]'s answer to [`Probe`].
#[derive(Clone, Copy, Debug)]
pub struct Identity(pub Item);

impl Val for Identity {
    fn get_type(&self) -> &Type {
        &PROBE
    }
    fn cel_type() -> &'static Type {
        &PROBE
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(*self)
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for Identity {}

/// What `v` stands for, if it is one of the repository's maps.
pub fn identify(v: &dyn Val) -> Option<Item> {
    let answer = v.as_indexer()?.get(&Probe).ok()?;
    answer.downcast_ref::<Identity>().map(|i| i.0)
}

/// A client class, target, workload, edge or resource, seen as a map.
#[derive(Clone, Copy)]
pub struct Record<'t> {
    pub t: &'t Tables<'t>,
    pub item: Item,
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.item)
    }
}

fn keys_of(shape: fields::Shape) -> &'static [CelString<'static>] {
    static KEYS: LazyLock<Vec<Vec<CelString<'static>>>> = LazyLock::new(|| {
        use fields::Shape::*;
        [Class, Target, Workload, Edge, Resource, Egress]
            .iter()
            .map(|s| s.fields().iter().map(|f| CelString::from(*f)).collect())
            .collect()
    });
    &KEYS[shape as usize]
}

impl Record<'_> {
    fn present(&self) -> impl Iterator<Item = &'static CelString<'static>> + '_ {
        keys_of(self.item.shape()).iter().filter(|k| self.item.has(self.t, k.inner()))
    }
}

impl<'t> Val for Record<'t> {
    fn get_type(&self) -> &Type {
        &MAP
    }
    fn cel_type() -> &'static Type {
        &MAP
    }
    self_capabilities!(indexer, iterable, sizer, container);
    fn equals(&self, other: &dyn Val) -> bool {
        identify(other) == Some(self.item)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }
}

impl<'t> Indexer for Record<'t> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        if idx.downcast_ref::<Probe>().is_some() {
            return Ok(CowVal::owned(Identity(self.item)));
        }
        let Some(key) = idx.downcast_ref::<CelString>() else {
            return Err(ExecutionError::no_such_key(&format!("{idx:?}")));
        };
        let f = key.inner();
        if !self.item.has(self.t, f) {
            return Err(ExecutionError::no_such_key(f));
        }
        let value = fields::field(self.t, self.item, f).ok_or_else(|| ExecutionError::no_such_key(f))?;
        Ok(CowVal::Owned(value))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

struct Keys<'b>(Box<dyn std::iter::Iterator<Item = &'static CelString<'static>> + 'b>);

impl<'b, 'v> traits::Iterator<'b, 'v> for Keys<'b> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        self.0.next().map(|k| k as &dyn Val)
    }
}

impl Iterable for Record<'_> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Keys(Box::new(self.present())))
    }
}

impl Sizer for Record<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.present().count() as i64)
    }
}

impl Container for Record<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(value.downcast_ref::<CelString>().is_some_and(|k| self.item.has(self.t, k.inner())))
    }
}

/// A list of [`Record`]s, stored unboxed.
#[derive(Clone)]
pub struct RecordList<'t>(pub Vec<Record<'t>>);

impl std::fmt::Debug for RecordList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} items]", self.0.len())
    }
}

impl<'t> Val for RecordList<'t> {
    fn get_type(&self) -> &Type {
        &LIST
    }
    fn cel_type() -> &'static Type {
        &LIST
    }
    self_capabilities!(adder, indexer, iterable, sizer, container);
    fn equals(&self, other: &dyn Val) -> bool {
        let Some(size) = other.as_sizer() else { return false };
        if *size.size().inner() != self.0.len() as i64 {
            return false;
        }
        let Some(it) = other.as_iterable() else { return false };
        let mut it = it.iter();
        self.0.iter().all(|r| it.next().is_some_and(|o| r.equals(o)))
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
}

struct Items<'b, 't>(std::slice::Iter<'b, Record<'t>>);

impl<'b, 'v, 't: 'v> traits::Iterator<'b, 'v> for Items<'b, 't> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        self.0.next().map(|r| r as &dyn Val)
    }
}

impl<'t> Iterable for RecordList<'t> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Items(self.0.iter()))
    }
}

impl<'t> Indexer for RecordList<'t> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let i = idx.downcast_ref::<CelInt>().map(|i| *i.inner()).ok_or_else(|| ExecutionError::UnexpectedType {
            got: idx.get_type().name().to_owned(),
            want: "int".to_owned(),
        })?;
        let r = usize::try_from(i).ok().and_then(|i| self.0.get(i));
        r.map(|r| CowVal::Borrowed(r as &dyn Val)).ok_or_else(|| ExecutionError::IndexOutOfBounds(i.into()))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Sizer for RecordList<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.0.len() as i64)
    }
}

impl Container for RecordList<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(identify(value).is_some_and(|item| self.0.iter().any(|r| r.item == item)))
    }
}

impl<'t> Adder for RecordList<'t> {
    fn add<'b, 'v>(&'b self, rhs: &(dyn Val + 'v)) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let it = rhs.as_iterable().ok_or_else(|| {
            ExecutionError::no_such_overload("_+_", vec!["list".to_owned(), rhs.get_type().name().to_owned()])
        })?;
        let mut out: Vec<Box<dyn Val + 'v>> = self.0.iter().map(|r| Box::new(*r) as Box<dyn Val + 'v>).collect();
        let mut it = it.iter();
        while let Some(v) = it.next() {
            out.push(v.clone_as_boxed());
        }
        Ok(CowVal::owned(CelList::from(out)))
    }
}

/// `v` written as CEL, lists cut after `limit` elements. Map keys are sorted,
/// except in the repository's maps, which keep their field order.
pub fn render(v: &dyn Val, limit: usize) -> String {
    let mut out = String::new();
    write_val(&mut out, v, limit);
    out
}

fn write_val(out: &mut String, v: &dyn Val, limit: usize) {
    use std::fmt::Write;
    match v.get_type().kind() {
        Kind::String => match v.downcast_ref::<CelString>() {
            Some(s) => write!(out, "{:?}", s.inner()).unwrap_or(()),
            None => out.push_str("<string>"),
        },
        Kind::List => write_list(out, v, limit),
        Kind::Map => write_map(out, v, limit),
        _ => match cel::Value::try_from(v) {
            Ok(value) => write_plain(out, &value),
            Err(_) => write!(out, "{v:?}").unwrap_or(()),
        },
    }
}

fn write_plain(out: &mut String, value: &cel::Value) {
    use std::fmt::Write;
    let _ = match value {
        cel::Value::Int(i) => write!(out, "{i}"),
        cel::Value::UInt(u) => write!(out, "{u}u"),
        cel::Value::Float(f) => write!(out, "{f}"),
        cel::Value::Bool(b) => write!(out, "{b}"),
        cel::Value::Null => write!(out, "null"),
        other => write!(out, "{other:?}"),
    };
}

fn write_list(out: &mut String, v: &dyn Val, limit: usize) {
    let Some(it) = v.as_iterable() else { return out.push_str("[]") };
    let mut it = it.iter();
    out.push('[');
    let mut n = 0usize;
    while let Some(e) = it.next() {
        if n == limit {
            let rest = 1 + std::iter::from_fn(|| it.next()).count();
            out.push_str(&format!(", … (+{rest} more)"));
            break;
        }
        if n > 0 {
            out.push_str(", ");
        }
        write_val(out, e, limit);
        n += 1;
    }
    out.push(']');
}

fn write_map(out: &mut String, v: &dyn Val, limit: usize) {
    let (Some(keys), Some(index)) = (v.as_iterable(), v.as_indexer()) else { return out.push_str("{}") };
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut it = keys.iter();
    while let Some(k) = it.next() {
        let value = index.get(k).map(|x| render(x.as_ref(), limit)).unwrap_or_else(|e| format!("<{e}>"));
        let key = match k.downcast_ref::<CelString>() {
            Some(s) if identify(v).is_some() => s.inner().to_owned(),
            _ => render(k, limit),
        };
        entries.push((key, value));
    }
    if identify(v).is_none() {
        entries.sort();
    }
    let body: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
    out.push('{');
    out.push_str(&body.join(", "));
    out.push('}');
}
