//! Stacks from spec strings in Horus syntax, top layer first: `"frag:nak:pt2pt"`.
//!
//! A layer may take parameters: `"drop(p=0.1,seed=7):nak"`. `bare` (or an empty spec) is the
//! stack with no layers. A named stack (`register_stack`) stands for its spec wherever it
//! appears: with `reliable` = `"frag:nak"`, `"chk_fifo:reliable:drop(p=0.1)"` is
//! `"chk_fifo:frag:nak:drop(p=0.1)"`. Building checks the stack bottom up and names the first layer whose
//! requirements are not met; an unknown name lists the known ones.

use crate::compose::Stack;
use crate::layer::{Layer, Missing};
use core::fmt;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Builds one layer from its parameters.
pub type Ctor = fn(&mut Args) -> Result<Box<dyn Layer>, String>;

#[derive(Clone)]
struct Entry {
    about: &'static str,
    ctor: Ctor,
}

/// The layers a spec may name.
#[derive(Default, Clone)]
pub struct Registry {
    entries: BTreeMap<&'static str, Entry>,
    /// Named stacks: name → (description, spec).
    stacks: BTreeMap<&'static str, (&'static str, &'static str)>,
}

/// Why a spec did not build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// The spec does not parse (unbalanced parentheses, an empty item, a parameter without
    /// `=`, named stacks nested too deep).
    Syntax {
        /// The whole spec.
        spec: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A name that is neither a registered layer nor a named stack.
    Unknown {
        /// The name as the spec gave it.
        name: String,
        /// Every name the registry knows (`Registry::known`).
        known: Vec<&'static str>,
    },
    /// A layer refused its parameters, or was given one it does not read.
    BadArgs {
        /// The layer's name in the spec.
        layer: String,
        /// The constructor's complaint, or the unknown parameter.
        why: String,
    },
    /// The layers do not make a well-formed stack (see `props`).
    Missing(Missing),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Syntax { spec, why } => write!(f, "bad stack spec `{spec}`: {why}"),
            SpecError::Unknown { name, known } => {
                write!(f, "unknown layer `{name}`; known layers: {}", known.join(", "))
            }
            SpecError::BadArgs { layer, why } => write!(f, "layer `{layer}`: {why}"),
            SpecError::Missing(m) => m.fmt(f),
        }
    }
}

impl std::error::Error for SpecError {}

impl From<Missing> for SpecError {
    fn from(m: Missing) -> Self {
        SpecError::Missing(m)
    }
}

impl Registry {
    /// A registry that knows no layer (only `bare`); register layers, or start from one
    /// that a layer crate fills.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds (or replaces) a layer under `name`.
    pub fn register(&mut self, name: &'static str, about: &'static str, ctor: Ctor) -> &mut Self {
        self.entries.insert(name, Entry { about, ctor });
        self
    }

    /// Names a stack spec (a name without parameters) so specs can use it as one item.
    pub fn register_stack(&mut self, name: &'static str, about: &'static str, spec: &'static str) -> &mut Self {
        self.stacks.insert(name, (about, spec));
        self
    }

    /// The spec a named stack stands for.
    pub fn stack_spec(&self, name: &str) -> Option<&'static str> {
        self.stacks.get(name).map(|&(_, spec)| spec)
    }

    /// Every name a spec may use (layers, then named stacks), with its one-line description.
    pub fn known(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        core::iter::once(("bare", "no layers: frame and CRC only"))
            .chain(self.entries.iter().map(|(n, e)| (*n, e.about)))
            .chain(self.stacks.iter().map(|(n, &(about, _))| (*n, about)))
    }

    /// Builds and checks the stack a spec names.
    pub fn build(&self, spec: &str) -> Result<Stack, SpecError> {
        let mut b = Stack::builder();
        for layer in self.layers(spec)? {
            b = b.push_boxed(layer);
        }
        Ok(b.build()?)
    }

    /// The layers a spec names, top first, not checked as a stack: for a stack put together
    /// partly in code (`StackBuilder::push_boxed` each, then `build` checks the whole).
    pub fn layers(&self, spec: &str) -> Result<Vec<Box<dyn Layer>>, SpecError> {
        let spec = spec.trim();
        if spec.is_empty() || spec == "bare" {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.expand(spec, 0)? {
            let (name, mut args) = parse_item(item, spec)?;
            let entry = self.entries.get(name).ok_or_else(|| SpecError::Unknown {
                name: name.to_string(),
                known: self.known().map(|(n, _)| n).collect(),
            })?;
            let layer = (entry.ctor)(&mut args).map_err(|why| SpecError::BadArgs { layer: name.into(), why })?;
            if let Some(k) = args.unused() {
                return Err(SpecError::BadArgs { layer: name.into(), why: format!("unknown parameter `{k}`") });
            }
            out.push(layer);
        }
        Ok(out)
    }
}

impl Registry {
    /// The items of `spec` with named stacks replaced by their items (nested at most 8 deep).
    fn expand<'s>(&'s self, spec: &'s str, depth: usize) -> Result<Vec<&'s str>, SpecError> {
        let mut out = Vec::new();
        for item in split_top_level(spec)? {
            match self.stacks.get(item) {
                Some(_) if depth >= 8 => {
                    return Err(SpecError::Syntax { spec: spec.to_string(), why: "named stacks nest too deep" });
                }
                Some(&(_, inner)) => out.extend(self.expand(inner, depth + 1)?),
                None => out.push(item),
            }
        }
        Ok(out)
    }
}

fn split_top_level(spec: &str) -> Result<Vec<&str>, SpecError> {
    let syntax = |why| SpecError::Syntax { spec: spec.to_string(), why };
    let (mut out, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(|| syntax("unbalanced `)`"))?,
            ':' if depth == 0 => {
                out.push(spec[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(syntax("unbalanced `(`"));
    }
    out.push(spec[start..].trim());
    if out.iter().any(|s| s.is_empty()) {
        return Err(syntax("empty layer name"));
    }
    Ok(out)
}

fn parse_item<'s>(item: &'s str, spec: &str) -> Result<(&'s str, Args), SpecError> {
    let syntax = |why| SpecError::Syntax { spec: spec.to_string(), why };
    let Some(open) = item.find('(') else {
        return Ok((item, Args::default()));
    };
    let name = item[..open].trim();
    let inner = item[open + 1..].strip_suffix(')').ok_or_else(|| syntax("text after `)`"))?;
    let mut kv = Vec::new();
    for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| syntax("parameter without `=`"))?;
        kv.push((k.trim().to_string(), v.trim().to_string(), false));
    }
    Ok((name, Args { kv }))
}

/// A layer's parameters from its spec item; each read marks the key as used, and keys no
/// constructor read are reported as unknown.
#[derive(Default, Debug)]
pub struct Args {
    kv: Vec<(String, String, bool)>,
}

impl Args {
    /// The raw value of `key`, if given.
    pub fn raw(&mut self, key: &str) -> Option<&str> {
        let e = self.kv.iter_mut().find(|(k, _, _)| k == key)?;
        e.2 = true;
        Some(&e.1)
    }

    /// The value of `key` parsed as `T`, or `default` if absent.
    pub fn get<T: FromStr>(&mut self, key: &str, default: T) -> Result<T, String> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("bad value `{v}` for `{key}`")),
        }
    }

    fn unused(&self) -> Option<&str> {
        self.kv.iter().find(|e| !e.2).map(|e| e.0.as_str())
    }
}
