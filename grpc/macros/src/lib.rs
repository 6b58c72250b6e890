//! `#[service(version = N)]` on a trait: generates the client stub (`<Trait>Client`) and the
//! server dispatcher (`serve_<trait>`) of a Group RPC service. See `thoth_grpc::service` for
//! what the generated code means; this crate only writes it. `#[object(version = N)]` on a
//! trait: generates a replicated object's semantics (`<Trait>Object<T>`) and its typed
//! operations (`<Trait>Ops`); see `thoth_grpc::object::typed`.
//!
//! Per method: `&self` (read-only, served under a read lock) or `&mut self`; owned argument
//! types; `#[rpc(mode = "all" | "first" | "majority" | "none")]` chooses the default response
//! mode (`all` if absent), `#[rpc(order = "abcast" | "cbcast" | "ubcast" | "stack")]` the order
//! of its group calls (`stack` if absent; `thoth_grpc::Order`). Each method's number is the FNV-1a hash of
//! `Trait/version/method(arg types)->result type`, computed here.
//!
//! Use the macros through `thoth_grpc`, which re-exports both (`thoth_grpc::service`,
//! `thoth_grpc::object`): the generated code names `::thoth_grpc`, so a crate that uses them
//! depends on `thoth-grpc`. More worked examples are in `thoth_grpc`'s docs (its `service`
//! and `object::typed` modules).
//!
//! # Example
//!
//! What the macros write, seen from outside: the generated names, and method numbers that
//! follow the version, so a stub and a server of different versions never take each other's
//! calls for their own.
//!
//! ```
//! use thoth_grpc::object::typed::split;
//! use thoth_grpc::service::decode;
//!
//! mod v1 {
//!     #[thoth_grpc::service(version = 1)]
//!     pub trait Counter {
//!         #[rpc(mode = "majority", order = "abcast")]
//!         fn add(&mut self, n: u64) -> u64;
//!     }
//!     #[thoth_grpc::object(version = 1)]
//!     pub trait Tally {
//!         fn add(&mut self, n: u64) -> u64;
//!     }
//! }
//! mod v2 {
//!     #[thoth_grpc::object(version = 2)]
//!     pub trait Tally {
//!         fn add(&mut self, n: u64) -> u64;
//!     }
//! }
//!
//! struct Total(u64);
//! impl v1::Counter for Total {
//!     fn add(&mut self, n: u64) -> u64 { self.0 += n; self.0 }
//! }
//!
//! // `#[service]`: a stub and a dispatcher (run over a `Node`, see `thoth_grpc::service`).
//! let _stub = v1::CounterClient::new;
//! let _serve = v1::serve_counter::<Total>;
//! // `#[object]`: each method as an operation: its number, then its arguments.
//! let (op1, op2) = (v1::TallyOps::add_op(5), v2::TallyOps::add_op(5));
//! let (m1, args) = split(&op1).expect("an operation");
//! let (m2, _) = split(&op2).expect("an operation");
//! assert_eq!(decode::<(u64,)>(args), Ok((5,)));
//! assert_ne!(m1, m2, "another version, another method number");
//! ```

#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::{FnArg, Ident, ItemTrait, LitInt, LitStr, Pat, ReturnType, TraitItem, Type};

struct Method {
    name: Ident,
    mutating: bool,
    args: Vec<(Ident, Type)>,
    ret: Type,
    mode: Ident,
    order: Ident,
    id: u64,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn version_of(attr: TokenStream) -> syn::Result<u64> {
    let mut version = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("version") {
            version = Some(meta.value()?.parse::<LitInt>()?.base10_parse::<u64>()?);
            Ok(())
        } else {
            Err(meta.error("expected `version = N`"))
        }
    });
    parser.parse(attr)?;
    version.ok_or_else(|| syn::Error::new(Span::call_site(), "#[service] needs `version = N`"))
}

fn method(trait_name: &str, version: u64, f: &mut syn::TraitItemFn) -> syn::Result<Method> {
    let mut mode = format_ident!("All");
    let mut order = format_ident!("Stack");
    let mut err = None;
    f.attrs.retain(|a| {
        if !a.path().is_ident("rpc") {
            return true;
        }
        let r = a.parse_nested_meta(|meta| {
            if meta.path.is_ident("mode") {
                let m = meta.value()?.parse::<LitStr>()?;
                mode = match m.value().as_str() {
                    "all" => format_ident!("All"),
                    "first" => format_ident!("First"),
                    "majority" => format_ident!("Majority"),
                    "none" => format_ident!("None"),
                    _ => return Err(meta.error("mode is one of all, first, majority, none")),
                };
                Ok(())
            } else if meta.path.is_ident("order") {
                let o = meta.value()?.parse::<LitStr>()?;
                order = match o.value().as_str() {
                    "stack" => format_ident!("Stack"),
                    "ubcast" => format_ident!("Ubcast"),
                    "cbcast" => format_ident!("Cbcast"),
                    "abcast" => format_ident!("Abcast"),
                    _ => return Err(meta.error("order is one of abcast, cbcast, ubcast, stack")),
                };
                Ok(())
            } else {
                Err(meta.error("expected `mode = \"...\"` or `order = \"...\"`"))
            }
        });
        if let Err(e) = r {
            err = Some(e);
        }
        false
    });
    if let Some(e) = err {
        return Err(e);
    }
    let sig = &f.sig;
    let mut inputs = sig.inputs.iter();
    let mutating = match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() => r.mutability.is_some(),
        _ => return Err(syn::Error::new_spanned(sig, "a service method takes `&self` or `&mut self`")),
    };
    let mut args = Vec::new();
    for a in inputs {
        let FnArg::Typed(pt) = a else { unreachable!("one receiver") };
        let Pat::Ident(p) = &*pt.pat else {
            return Err(syn::Error::new_spanned(&pt.pat, "arguments are plain names"));
        };
        if let Type::Reference(_) = &*pt.ty {
            return Err(syn::Error::new_spanned(&pt.ty, "arguments are owned (they cross the network)"));
        }
        args.push((p.ident.clone(), (*pt.ty).clone()));
    }
    let ret: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, t) => (**t).clone(),
    };
    let types: Vec<String> = args.iter().map(|(_, t)| quote!(#t).to_string()).collect();
    let signature = format!("{trait_name}/{version}/{}({})->{}", sig.ident, types.join(","), quote!(#ret));
    Ok(Method { name: sig.ident.clone(), mutating, args, ret, mode, order, id: fnv(&signature) })
}

/// `#[service(version = N)]` on a trait: keeps the trait and generates, for a trait `Name`,
/// the client stub `NameClient<'a>` (over a `thoth_grpc::Node`: `new` calls the whole group,
/// `to(member)` one member, `timeout` sets each call's bound, 5 s by default; each method
/// returns every member's typed answer, `thoth_grpc::service::Answers`) and the dispatcher
/// `serve_name(node, Arc<RwLock<T>>)` (the trait's name in snake case) for any `T: Name`
/// (`&self` methods under the read lock, `&mut self` ones under the write lock).
///
/// Per method, `#[rpc(mode = "...", order = "...")]` sets its response mode (`all`, `first`,
/// `majority`, `none`; `all` if absent) and the order of its group calls (`abcast`,
/// `cbcast`, `ubcast`, `stack`; `stack` if absent): `thoth_grpc::Mode`, `thoth_grpc::Order`.
/// Arguments and the result are owned types with serde's `Serialize` and
/// `DeserializeOwned`. A missing `version`, a method without `&self` or `&mut self`, a
/// borrowed or destructured argument, or an unknown `#[rpc]` key or value is a compile
/// error at the item at fault.
///
/// A worked example is in the docs of `thoth_grpc::service`, where the generated code's
/// runtime lives (a proc-macro crate cannot run doctests of its own output).
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr, item) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<proc_macro2::TokenStream> {
    let version = version_of(attr)?;
    let mut tr: ItemTrait = syn::parse(item)?;
    let name = tr.ident.clone();
    let vis = tr.vis.clone();
    let mut methods = Vec::new();
    for item in &mut tr.items {
        if let TraitItem::Fn(f) = item {
            methods.push(method(&name.to_string(), version, f)?);
        }
    }
    let client = format_ident!("{}Client", name);
    let serve = format_ident!("serve_{}", snake(&name.to_string()));
    let g = quote!(::thoth_grpc);

    let stubs = methods.iter().map(|m| {
        let Method { name: mname, args, ret, mode, order, id, .. } = m;
        let names: Vec<_> = args.iter().map(|(n, _)| n).collect();
        let types: Vec<_> = args.iter().map(|(_, t)| t).collect();
        let doc = format!("Calls `{mname}` on the target and waits for its answers (`Mode::{mode}`, `Order::{order}`).");
        quote! {
            #[doc = #doc]
            pub fn #mname(&self, #(#names: #types),*) -> ::core::result::Result<#g::service::Answers<#ret>, #g::CallError> {
                let args = #g::service::encode(&(#(#names,)*));
                let out = self.node.call(#g::Request {
                    target: self.target,
                    method: #id,
                    args,
                    mode: #g::Mode::#mode,
                    order: #g::Order::#order,
                    timeout: self.timeout,
                    filter: None,
                })?;
                Ok(#g::service::typed::<#ret>(out))
            }
        }
    });
    let handlers = methods.iter().map(|m| {
        let Method { name: mname, args, mutating, order, id, .. } = m;
        // Calls in an order run in it (a replica applies them as delivered); `ubcast` ones
        // on the workers, concurrently.
        let serve = if order == "Ubcast" { quote!(serve) } else { quote!(serve_ordered) };
        let names: Vec<_> = args.iter().map(|(n, _)| n).collect();
        let types: Vec<_> = args.iter().map(|(_, t)| t).collect();
        let lock = if *mutating {
            quote!(obj.write().unwrap_or_else(|e| e.into_inner()))
        } else {
            quote!(obj.read().unwrap_or_else(|e| e.into_inner()))
        };
        quote! {
            {
                let obj = obj.clone();
                node.#serve(#id, move |inc: #g::Incoming| {
                    let #g::Incoming { args, responder, .. } = inc;
                    match #g::service::decode::<(#(#types,)*)>(&args) {
                        Ok((#(#names,)*)) => {
                            let r = #lock.#mname(#(#names),*);
                            responder.reply(Ok(#g::service::encode(&r)));
                        }
                        Err(e) => responder.reply(Err(e)),
                    }
                });
            }
        }
    });
    let doc_client = format!(
        "The client stub of `{name}` (version {version}): each method calls the group (or the member `to` chose) and returns every member's typed answer."
    );
    let doc_serve = format!(
        "Serves `{name}` (version {version}) on `node` from `obj`: `&self` methods under its read lock, `&mut self` ones under its write lock; methods in an order on the node's ordered lane (in delivery order), `ubcast` ones on its workers."
    );
    Ok(quote! {
        #tr

        #[doc = #doc_client]
        #vis struct #client<'a> {
            node: &'a #g::Node,
            target: #g::Target,
            timeout: ::std::time::Duration,
        }

        impl<'a> #client<'a> {
            /// Calls to the whole group, each within 5 s.
            pub fn new(node: &'a #g::Node) -> Self {
                #client { node, target: #g::Target::Group, timeout: ::std::time::Duration::from_secs(5) }
            }
            /// Calls to `member` only.
            pub fn to(self, member: #g::EndpointId) -> Self {
                #client { target: #g::Target::Member(member), ..self }
            }
            /// Each call within `timeout` instead of 5 s.
            pub fn timeout(self, timeout: ::std::time::Duration) -> Self {
                #client { timeout, ..self }
            }
            #(#stubs)*
        }

        #[doc = #doc_serve]
        #vis fn #serve<T: #name + Send + Sync + 'static>(node: &#g::Node, obj: ::std::sync::Arc<::std::sync::RwLock<T>>) {
            #(#handlers)*
        }
    })
}

/// `#[object(version = N)]` on a trait: keeps the trait and generates, for a trait `Name`,
/// `NameObject<T>(pub T)`, a replicated object's semantics (`thoth_grpc::Semantics`) for any
/// `T: Name` that serde can serialize (`&mut self` methods are its writes, `&self` ones its
/// reads, its serde form its dump), and `NameOps`, whose associated functions make each
/// method an operation (`NameOps::method(id, args..)`, an `ObjCmd::Write` or `Read`), give
/// its bytes (`method_op`) and decode its result (`method_result`).
///
/// Methods take no `#[rpc]`: the object's strategy decides how calls go. Owned arguments
/// and results with serde's `Serialize` and `DeserializeOwned`, as for `service`.
///
/// A worked example (which runs as a doctest) is in the docs of `thoth_grpc::object::typed`.
#[proc_macro_attribute]
pub fn object(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_object(attr, item) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_object(attr: TokenStream, item: TokenStream) -> syn::Result<proc_macro2::TokenStream> {
    let version = version_of(attr)?;
    let tr: ItemTrait = syn::parse(item)?;
    let name = tr.ident.clone();
    let vis = tr.vis.clone();
    let mut methods = Vec::new();
    for item in &tr.items {
        if let TraitItem::Fn(f) = item {
            if let Some(a) = f.attrs.iter().find(|a| a.path().is_ident("rpc")) {
                return Err(syn::Error::new_spanned(a, "an object's method takes no #[rpc]: its strategy decides"));
            }
            methods.push(method(&name.to_string(), version, &mut f.clone())?);
        }
    }
    let object = format_ident!("{}Object", name);
    let ops = format_ident!("{}Ops", name);
    let g = quote!(::thoth_grpc);
    let t = quote!(#g::object::typed);
    let arms = |mutating: bool| {
        let arms: Vec<_> = methods
            .iter()
            .filter(|m| m.mutating == mutating)
            .map(|m| {
                let Method { name: mname, args, id, .. } = m;
                let names: Vec<_> = args.iter().map(|(n, _)| n).collect();
                let types: Vec<_> = args.iter().map(|(_, t)| t).collect();
                quote! {
                    #id => {
                        let (#(#names,)*) = #t::decode::<(#(#types,)*)>(args)?;
                        Ok(#t::encode(&self.0.#mname(#(#names),*)))
                    }
                }
            })
            .collect();
        quote!(#(#arms)*)
    };
    let (writes, reads) = (arms(true), arms(false));
    let builders = methods.iter().map(|m| {
        let Method { name: mname, args, ret, id, mutating, .. } = m;
        let names: Vec<_> = args.iter().map(|(n, _)| n).collect();
        let types: Vec<_> = args.iter().map(|(_, t)| t).collect();
        let op = format_ident!("{}_op", mname);
        let result = format_ident!("{}_result", mname);
        let kind = if *mutating { quote!(Write) } else { quote!(Read) };
        let doc = format!(
            "`{mname}` as an operation with the caller's id `id` (a {}).",
            if *mutating { "write" } else { "read" }
        );
        quote! {
            #[doc = #doc]
            pub fn #mname(id: #g::CallId, #(#names: #types),*) -> #g::ObjCmd {
                #g::ObjCmd::#kind { id, op: Self::#op(#(#names),*) }
            }
            /// The operation's bytes (for `Replica::read_local`, or to send them yourself).
            pub fn #op(#(#names: #types),*) -> #t::Bytes {
                #t::op(#id, &(#(#names,)*))
            }
            /// The operation's result, decoded.
            pub fn #result(b: &[u8]) -> ::core::result::Result<#ret, ::std::string::String> {
                #t::decode::<#ret>(b)
            }
        }
    });
    let doc_object = format!(
        "`{name}` (version {version}) as a replicated object's semantics: `T`'s `&mut self` methods are its writes, its `&self` methods its reads, its serde form its dump."
    );
    let doc_ops = format!("The operations of `{name}` (version {version}) and their results' decoders.");
    let serde = quote!(#g::service::serde);
    Ok(quote! {
        #tr

        #[doc = #doc_object]
        #vis struct #object<T>(pub T);

        impl<T: #name + #serde::Serialize + #serde::de::DeserializeOwned> #g::Semantics for #object<T> {
            fn apply(&mut self, op: &[u8]) -> ::core::result::Result<#t::Bytes, ::std::string::String> {
                let (method, args) = #t::split(op)?;
                match method {
                    #writes
                    m => Err(#t::no_such(m, "write")),
                }
            }
            fn read(&self, op: &[u8]) -> ::core::result::Result<#t::Bytes, ::std::string::String> {
                let (method, args) = #t::split(op)?;
                match method {
                    #reads
                    m => Err(#t::no_such(m, "read")),
                }
            }
            fn dump(&self) -> #t::Bytes {
                #t::encode(&self.0)
            }
            fn undump(&mut self, state: &[u8]) -> ::core::result::Result<(), ::std::string::String> {
                self.0 = #t::decode(state)?;
                Ok(())
            }
        }

        #[doc = #doc_ops]
        #vis struct #ops;

        impl #ops {
            #(#builders)*
        }
    })
}
