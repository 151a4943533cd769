//! `#[softprobe::case("path", options...)]`: parsing, validation and expansion.
//!
//! The generated code fits on a screen: a `#[test]` function that hands the user's function,
//! untouched, to `::softprobe::__private::run_case_with` along with the call-site facts (path,
//! manifest dir, test name). Which signatures are accepted is decided by trait bounds in
//! `softprobe`, so type errors read as ordinary ones.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, ItemFn, LitStr, Path, Token};

const OPTIONS: &str = "`mode`, `strict`, `partial`, `redact`, `exact`, `headers`, `crate`";
const MODES: &[&str] = &["replay", "capture", "generate", "auto"];

/// Everything the attribute says.
struct CaseArgs {
    path: LitStr,
    mode: Option<LitStr>,
    strict: bool,
    partial: bool,
    redact: Vec<LitStr>,
    exact: Vec<LitStr>,
    headers: Vec<LitStr>,
    krate: Option<Path>,
}

/// One `key`, `key = "value"` or `key(...)` after the path.
enum Opt {
    Mode(Ident, LitStr),
    Strict(Ident),
    Partial(Ident),
    Redact(Ident, Vec<LitStr>),
    Exact(Ident, Vec<LitStr>),
    Headers(Ident, Vec<LitStr>),
    Crate(Ident, LitStr),
}

impl Opt {
    fn key(&self) -> &Ident {
        match self {
            Opt::Mode(k, _)
            | Opt::Strict(k)
            | Opt::Partial(k)
            | Opt::Redact(k, _)
            | Opt::Exact(k, _)
            | Opt::Headers(k, _)
            | Opt::Crate(k, _) => k,
        }
    }
}

impl Parse for Opt {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `crate` is a keyword, so accept any identifier-like token.
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        match key.to_string().as_str() {
            "mode" => {
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), "`mode` takes a string: mode = \"capture\"")
                })?;
                if !MODES.contains(&value.value().as_str()) {
                    return Err(syn::Error::new_spanned(
                        &value,
                        format!(
                            "unknown mode `{}`; expected one of \"replay\", \"capture\", \"generate\", \"auto\"",
                            value.value()
                        ),
                    ));
                }
                Ok(Opt::Mode(key, value))
            }
            "strict" => {
                if input.peek(Token![=]) || input.peek(syn::token::Paren) {
                    return Err(syn::Error::new_spanned(
                        &key,
                        "`strict` is a flag and takes no value: write `strict`",
                    ));
                }
                Ok(Opt::Strict(key))
            }
            "partial" => {
                if input.peek(Token![=]) || input.peek(syn::token::Paren) {
                    return Err(syn::Error::new_spanned(
                        &key,
                        "`partial` is a flag and takes no value: write `partial` when the test \
                         sends only some of the recorded inbound requests",
                    ));
                }
                Ok(Opt::Partial(key))
            }
            "redact" => Ok(Opt::Redact(key.clone(), parse_selectors(&key, input)?)),
            "exact" => Ok(Opt::Exact(key.clone(), parse_selectors(&key, input)?)),
            "headers" => Ok(Opt::Headers(key.clone(), parse_headers(&key, input)?)),
            "crate" => {
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse()?;
                Ok(Opt::Crate(key, value))
            }
            other => Err(syn::Error::new_spanned(
                &key,
                format!("unknown option `{other}`; expected one of {OPTIONS}"),
            )),
        }
    }
}

/// `redact(...)` / `exact(...)`: string selectors, each a body path (`.body.id`), a header
/// (`header:date`) or a query parameter (`query:ts`).
fn parse_selectors(key: &Ident, input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let content;
    syn::parenthesized!(content in input);
    let items = Punctuated::<LitStr, Token![,]>::parse_terminated(&content).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`{key}` takes string selectors: {key}(\".body.createdAt\", \"header:date\")"),
        )
    })?;
    let mut selectors = Vec::new();
    for lit in items {
        let value = lit.value();
        if !(value.starts_with('.') || value.starts_with("header:") || value.starts_with("query:"))
        {
            return Err(syn::Error::new_spanned(
                &lit,
                format!(
                    "invalid selector `{value}` in `{key}`: expected a body path starting with `.` (\".body.id\", \".body.items[].createdAt\"), a header as \"header:<name>\" or a query parameter as \"query:<name>\""
                ),
            ));
        }
        selectors.push(lit);
    }
    Ok(selectors)
}

/// `headers("x-total-count", ...)`: non-empty, each a header name, none twice. Whether a
/// header may be compared at all (volatile ones may not) is decided at run time.
pub(crate) fn parse_headers(key: &Ident, input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    const USAGE: &str =
        "`headers` takes header names to compare: headers(\"x-total-count\", \"etag\")";
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new_spanned(key, USAGE));
    }
    let content;
    syn::parenthesized!(content in input);
    let items = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)
        .map_err(|e| syn::Error::new(e.span(), USAGE))?;
    if items.is_empty() {
        return Err(syn::Error::new_spanned(key, USAGE));
    }
    let mut names: Vec<LitStr> = Vec::new();
    for lit in items {
        let value = lit.value();
        if let Some(rest) = value.strip_prefix("header:") {
            return Err(syn::Error::new_spanned(
                &lit,
                format!("write the bare header name: \"{rest}\""),
            ));
        }
        if value.is_empty()
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(syn::Error::new_spanned(
                &lit,
                format!("`{value}` is not a header name"),
            ));
        }
        if names.iter().any(|n| n.value().eq_ignore_ascii_case(&value)) {
            return Err(syn::Error::new_spanned(
                &lit,
                format!("header `{value}` is listed twice"),
            ));
        }
        names.push(lit);
    }
    Ok(names)
}

impl Parse for CaseArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        const USAGE: &str = "expected the case file path first, e.g. #[softprobe::case(\"cases/checkout.case.json\")]";
        if input.is_empty() {
            return Err(syn::Error::new(Span::call_site(), USAGE));
        }
        let path: LitStr = if input.peek(LitStr) {
            input.parse()?
        } else {
            let tokens: TokenStream = input.fork().parse()?;
            return Err(syn::Error::new_spanned(
                tokens,
                format!("the case path must be a string literal; {USAGE}"),
            ));
        };
        if path.value().trim().is_empty() {
            return Err(syn::Error::new_spanned(&path, "the case path is empty"));
        }
        if !path.value().ends_with(".json") {
            return Err(syn::Error::new_spanned(
                &path,
                "case files are JSON: expected a path ending in `.json`, e.g. \"cases/checkout.case.json\"",
            ));
        }
        let mut args = CaseArgs {
            path,
            mode: None,
            strict: false,
            partial: false,
            redact: Vec::new(),
            exact: Vec::new(),
            headers: Vec::new(),
            krate: None,
        };
        if input.is_empty() {
            return Ok(args);
        }
        input.parse::<Token![,]>()?;
        let opts = Punctuated::<Opt, Token![,]>::parse_terminated(input)?;
        let mut errors: Option<syn::Error> = None;
        let mut seen: Vec<String> = Vec::new();
        for opt in opts {
            let name = opt.key().to_string();
            if seen.contains(&name) {
                let err = syn::Error::new_spanned(opt.key(), format!("duplicate option `{name}`"));
                match &mut errors {
                    Some(e) => e.combine(err),
                    None => errors = Some(err),
                }
                continue;
            }
            seen.push(name);
            match opt {
                Opt::Mode(_, v) => args.mode = Some(v),
                Opt::Strict(_) => args.strict = true,
                Opt::Partial(_) => args.partial = true,
                Opt::Redact(_, v) => args.redact = v,
                Opt::Exact(_, v) => args.exact = v,
                Opt::Headers(_, v) => args.headers = v,
                Opt::Crate(_, v) => args.krate = Some(v.parse()?),
            }
        }
        for h in &args.headers {
            let both = args.redact.iter().find(|r| {
                r.value()
                    .strip_prefix("header:")
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(&h.value()))
            });
            if let Some(r) = both {
                let err = syn::Error::new_spanned(
                    h,
                    format!(
                        "header `{}` is both compared (`headers`) and redacted ({:?}); keep one",
                        h.value(),
                        r.value()
                    ),
                );
                match &mut errors {
                    Some(e) => e.combine(err),
                    None => errors = Some(err),
                }
            }
        }
        match errors {
            Some(e) => Err(e),
            None => Ok(args),
        }
    }
}

fn is_test_attribute(attr: &Attribute) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    matches!(
        segments.last().map(String::as_str),
        Some("test" | "rstest" | "test_case")
    ) || segments.iter().any(|s| s == "softprobe") && segments.last().is_some_and(|s| s == "case")
}

fn check_signature(item: &ItemFn) -> Result<(), syn::Error> {
    let mut errors: Vec<syn::Error> = Vec::new();
    let sig = &item.sig;
    for attr in &item.attrs {
        if is_test_attribute(attr) {
            errors.push(syn::Error::new_spanned(
                attr,
                "remove this attribute: #[softprobe::case] already declares the test",
            ));
        }
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a #[softprobe::case] test cannot be generic",
        ));
    }
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            "a #[softprobe::case] test cannot be `const`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a #[softprobe::case] test cannot be `extern`",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            "a #[softprobe::case] test cannot be variadic",
        ));
    }
    if sig.inputs.len() > 1 {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            "a #[softprobe::case] test takes no argument or one: `sp: softprobe::Session`",
        ));
    }
    if let Some(syn::FnArg::Receiver(r)) = sig.inputs.first() {
        errors.push(syn::Error::new_spanned(
            r,
            "a #[softprobe::case] test is a free function, not a method",
        ));
    }
    let mut iter = errors.into_iter();
    match iter.next() {
        None => Ok(()),
        Some(mut first) => {
            for e in iter {
                first.combine(e);
            }
            Err(first)
        }
    }
}

/// Expands the attribute; on error, emits the errors next to the untouched function so the
/// rest of the crate (and IDEs) still see it.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[softprobe::case] goes on a function: `async fn name(sp: softprobe::Session)`",
            )
            .to_compile_error();
            return quote! { #err #item };
        }
    };
    let args: CaseArgs = match syn::parse2(args) {
        Ok(a) => a,
        Err(err) => return with_item(err, &func),
    };
    if let Err(err) = check_signature(&func) {
        return with_item(err, &func);
    }
    generate(&args, func)
}

fn with_item(err: syn::Error, func: &ItemFn) -> TokenStream {
    let err = err.to_compile_error();
    quote! { #err #[allow(dead_code)] #func }
}

fn generate(args: &CaseArgs, func: ItemFn) -> TokenStream {
    let krate = args
        .krate
        .clone()
        .map(|p| quote!(#p))
        .unwrap_or_else(|| quote!(::softprobe));
    let vis = &func.vis;
    let name = &func.sig.ident;
    let attrs = &func.attrs;
    let inner_name = format_ident!("__softprobe_case_{}", name);
    let mut inner = func.clone();
    inner.sig.ident = inner_name.clone();
    inner.attrs.clear();
    inner.vis = syn::Visibility::Inherited;
    let path = &args.path;
    let mode = match &args.mode {
        Some(m) => quote!(::core::option::Option::Some(#m)),
        None => quote!(::core::option::Option::None),
    };
    let strict = args.strict;
    let partial = args.partial;
    let redact = &args.redact;
    let exact = &args.exact;
    let span = func.sig.ident.span();
    let headers: Vec<String> = args
        .headers
        .iter()
        .map(|h| h.value().to_ascii_lowercase())
        .collect();
    let call = quote_spanned! {span=>
        #krate::__private::run_case_with(__softprobe_spec, __softprobe_options, #inner_name)
    };
    quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() {
            #inner
            let __softprobe_spec = #krate::__private::CaseSpec {
                path: #path,
                manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                package: ::core::env!("CARGO_PKG_NAME"),
                test_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                source_file: ::core::file!(),
                mode: #mode,
                strict: #strict,
                redact: &[#(#redact),*],
            };
            let __softprobe_options = #krate::__private::CaseOptions {
                headers: &[#(#headers),*],
                partial: #partial,
                exact: &[#(#exact),*],
            };
            #call
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens in `stream`, groups flattened.
    fn count(stream: TokenStream) -> usize {
        stream
            .into_iter()
            .map(|t| match t {
                proc_macro2::TokenTree::Group(g) => 2 + count(g.stream()),
                _ => 1,
            })
            .sum()
    }

    #[test]
    fn the_expansion_adds_one_call_with_a_constant_description() {
        let item = quote! {
            async fn checkout(sp: softprobe::Session) {
                let base = sp.serve(app(sp.http_client())).await;
                sp.client().get(format!("{base}/checkout")).send().await.unwrap();
            }
        };
        let out = expand(quote!("cases/checkout.case.json"), item.clone());
        let text = out.to_string();
        assert_eq!(text.matches("run_case_with").count(), 1, "{text}");
        assert!(!text.contains("compile_error"), "{text}");
        // The user's function (renamed, kept whole) plus the wrapper: the test's attribute,
        // its signature, the description's fields and the call.
        let added = count(out) - count(item);
        assert!(
            added <= 200,
            "the expansion adds {added} tokens per test (at most 200): {text}"
        );
    }
}
