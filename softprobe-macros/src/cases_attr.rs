//! `#[softprobe::cases("cases/checkout/*.case.json", ...)]`: one test per matching file.
//!
//! The glob is expanded here, at compile time, against the crate's directory (the only
//! filesystem access of this crate: it lists names, it never reads the case format). Each
//! file is also `include_bytes!`-ed so that editing a case rebuilds its test.

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, ItemFn, LitStr, Token};

struct CasesArgs {
    pattern: LitStr,
    redact: Vec<LitStr>,
    krate: Option<syn::Path>,
}

impl Parse for CasesArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !input.peek(LitStr) {
            return Err(syn::Error::new(
                Span::call_site(),
                "expected a glob of case files first, e.g. #[softprobe::cases(\"cases/checkout/*.case.json\")]",
            ));
        }
        let pattern: LitStr = input.parse()?;
        let mut args = CasesArgs {
            pattern,
            redact: Vec::new(),
            krate: None,
        };
        if input.is_empty() {
            return Ok(args);
        }
        input.parse::<Token![,]>()?;
        while !input.is_empty() {
            let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            match key.to_string().as_str() {
                "redact" => {
                    let content;
                    syn::parenthesized!(content in input);
                    args.redact = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?
                        .into_iter()
                        .collect();
                }
                "crate" => {
                    input.parse::<Token![=]>()?;
                    let lit: LitStr = input.parse()?;
                    args.krate = Some(lit.parse()?);
                }
                other => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        format!("unknown option `{other}`; expected one of `redact`, `crate`"),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// A test name from a file name: `happy-path.case.json` → `happy_path`.
fn test_ident(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("case");
    let stem = name
        .strip_suffix(".case.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name);
    let mut out: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "case_");
    }
    out
}

/// Files matching a glob whose only wildcards are in the last component (`*`, `?`).
fn matches(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = root.join(pattern);
    let dir = full.parent().ok_or("the glob has no directory")?.to_owned();
    let file_pattern = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the glob has no file name")?
        .to_owned();
    if dir.to_string_lossy().contains(['*', '?', '[']) {
        return Err(
            "wildcards are supported in the file name only, e.g. cases/checkout/*.case.json".into(),
        );
    }
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list the directory of {pattern:?}: {e}"))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| wildcard(&file_pattern, n))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer match with backtracking on the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[softprobe::cases] goes on `async fn app(sp: softprobe::Session) -> String` returning the service's base URL",
            )
            .to_compile_error();
            return quote! { #err #item };
        }
    };
    let args: CasesArgs = match syn::parse2(args) {
        Ok(a) => a,
        Err(e) => {
            let e = e.to_compile_error();
            return quote! { #e #[allow(dead_code)] #func };
        }
    };
    if func.sig.asyncness.is_none() || func.sig.inputs.len() != 1 {
        let e = syn::Error::new_spanned(
            &func.sig,
            "#[softprobe::cases] needs `async fn app(sp: softprobe::Session) -> String`: it starts the service and returns its base URL (from `sp.serve(...)`)",
        )
        .to_compile_error();
        return quote! { #e #[allow(dead_code)] #func };
    }
    let root = match std::env::var("CARGO_MANIFEST_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from("."),
    };
    let files = match matches(&root, &args.pattern.value()) {
        Ok(f) if f.is_empty() => {
            let e = syn::Error::new_spanned(
                &args.pattern,
                format!(
                    "no case file matches {:?} (relative to the crate's directory)",
                    args.pattern.value()
                ),
            )
            .to_compile_error();
            return quote! { #e #[allow(dead_code)] #func };
        }
        Ok(f) => f,
        Err(msg) => {
            let e = syn::Error::new_spanned(&args.pattern, msg).to_compile_error();
            return quote! { #e #[allow(dead_code)] #func };
        }
    };
    let krate = args
        .krate
        .clone()
        .map(|p| quote!(#p))
        .unwrap_or_else(|| quote!(::softprobe));
    let name = &func.sig.ident;
    let redact = &args.redact;
    let mut seen = Vec::new();
    let tests = files.iter().map(|file| {
        let mut ident = test_ident(file);
        while seen.contains(&ident) {
            ident.push('_');
        }
        seen.push(ident.clone());
        let test = format_ident!("{}", ident);
        let path = file.display().to_string();
        quote! {
            #[::core::prelude::v1::test]
            fn #test() {
                const _: &[u8] = ::core::include_bytes!(#path);
                #krate::__private::run_inbound_replay(
                    #krate::__private::CaseSpec {
                        path: #path,
                        manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                        package: ::core::env!("CARGO_PKG_NAME"),
                        test_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#test)),
                        source_file: ::core::file!(),
                        mode: ::core::option::Option::Some("replay"),
                        strict: false,
                        redact: &[#(#redact),*],
                    },
                    super::#name,
                )
            }
        }
    });
    quote! {
        #[allow(dead_code)]
        #func
        mod #name {
            #(#tests)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_wildcards() {
        assert_eq!(
            test_ident(Path::new("a/happy-path.case.json")),
            "happy_path"
        );
        assert_eq!(test_ident(Path::new("2fa.case.json")), "case_2fa");
        assert!(wildcard("*.case.json", "x.case.json"));
        assert!(wildcard("check?ut-*.json", "checkout-1.json"));
        assert!(!wildcard("*.case.json", "x.case.yaml"));
    }
}
