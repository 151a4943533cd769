//! `#[softprobe::cases("cases/checkout/*.case.json", ...)]`: one test per matching file, or
//! with a `*.suite.yaml`, one test per case of the suite.
//!
//! The glob (or the suite's `cases`, see [`crate::suite_plan`]) is expanded here, at compile
//! time, with the `glob` crate, against the crate's directory: this crate lists names and reads a
//! suite's `cases` only, never the case format, and never the environment. Each file is
//! `include_bytes!`-ed so that editing it rebuilds the tests, and one more test re-lists the
//! files at run time to catch files added since. A suite whose `cases` use a `${VAR}` cannot be
//! listed before the variable is known: it gets one test, `all_cases`, that lists the cases
//! with the run's environment and runs each of them.

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, ItemFn, LitStr, Token};

use crate::suite_plan::Listing;

struct CasesArgs {
    pattern: LitStr,
    redact: Vec<LitStr>,
    headers: Vec<LitStr>,
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
            headers: Vec::new(),
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
                "headers" => {
                    args.headers = crate::case_attr::parse_headers(&key, input)?;
                }
                "crate" => {
                    input.parse::<Token![=]>()?;
                    let lit: LitStr = input.parse()?;
                    args.krate = Some(lit.parse()?);
                }
                other => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        format!(
                            "unknown option `{other}`; expected one of `redact`, `headers`, `crate`"
                        ),
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
    sanitize(stem)
}

/// A test identifier from any name: lowercase ASCII letters, digits and `_`.
fn sanitize(stem: &str) -> String {
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

/// Files matching `pattern` relative to `root`, sorted, with the `glob` crate: the matcher the
/// run-time guard (`check_case_files`) and the suite planner use, so the three never disagree
/// on which files a pattern names.
fn matches(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = root.join(pattern);
    let full = full.to_str().ok_or("the glob is not valid UTF-8")?;
    softprobe_suite_yaml::cases::matching(full).map_err(|e| format!("bad glob {pattern:?}: {e}"))
}

/// A compile error spanned on `at`, emitted with the function left in place (so the error
/// is the only one).
fn fail(at: &LitStr, message: String, func: &ItemFn) -> TokenStream {
    let e = syn::Error::new_spanned(at, message).to_compile_error();
    quote! { #e #[allow(dead_code)] #func }
}

fn is_suite(pattern: &str) -> bool {
    pattern.ends_with(".suite.yaml") || pattern.ends_with(".suite.yml")
}

/// One generated test: its identifier, the case file, and for suites its place in the suite.
struct Generated {
    ident: Ident,
    file: PathBuf,
    name: String,
    skip: Option<String>,
}

/// Identifiers from names, deduplicated with `_2`, `_3`...; `__case_files_current` is taken.
fn idents(names: &[String]) -> Vec<Ident> {
    let mut seen: Vec<String> = vec!["__case_files_current".into()];
    names
        .iter()
        .map(|n| {
            let base = sanitize(n);
            let mut ident = base.clone();
            let mut k = 1;
            while seen.contains(&ident) {
                k += 1;
                ident = format!("{base}_{k}");
            }
            seen.push(ident.clone());
            format_ident!("{}", ident)
        })
        .collect()
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func: ItemFn = match syn::parse2(item.clone()) {
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
    // `#[should_panic]` on the function applies to every generated test.
    let (forwarded, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut func.attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("should_panic"));
    func.attrs = kept;
    let root = match std::env::var("CARGO_MANIFEST_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from("."),
    };
    let pattern = args.pattern.value();
    let suite = is_suite(&pattern);
    if suite && !args.headers.is_empty() {
        return fail(
            &args.pattern,
            "headers(...) does not apply to a suite: its assertions decide what is compared (use assertions.headers.include in the suite)".into(),
            &func,
        );
    }
    if suite && !args.redact.is_empty() {
        return fail(
            &args.pattern,
            "redact(...) does not apply to a suite: its assertions decide what is compared (use assertions.body.ignore in the suite)".into(),
            &func,
        );
    }
    // Set when the suite's `cases` use a variable: the test lists them when it runs.
    let mut at_run_time = false;
    let generated: Vec<Generated> = if suite {
        let suite_path = root.join(&pattern);
        let text = match std::fs::read_to_string(&suite_path) {
            Ok(t) => t,
            Err(e) => {
                return fail(
                    &args.pattern,
                    format!("cannot read the suite {pattern}: {e}"),
                    &func,
                );
            }
        };
        let base = suite_path.parent().unwrap_or(&root).to_owned();
        let planned = match crate::suite_plan::plan(&text, &base) {
            Ok(Listing::Cases(p)) => p,
            Ok(Listing::AtRunTime) => {
                at_run_time = true;
                Vec::new()
            }
            Err(e) => {
                return fail(
                    &args.pattern,
                    format!("{pattern}:{}: {}", e.line, e.message),
                    &func,
                );
            }
        };
        let names: Vec<String> = planned.iter().map(|c| c.name.clone()).collect();
        planned
            .into_iter()
            .zip(idents(&names))
            .map(|(c, ident)| Generated {
                ident,
                file: c.path,
                name: c.name,
                skip: c.skip,
            })
            .collect()
    } else {
        let files = match matches(&root, &pattern) {
            Ok(f) if f.is_empty() => {
                return fail(
                    &args.pattern,
                    format!("no case file matches {pattern:?} (relative to the crate's directory)"),
                    &func,
                );
            }
            Ok(f) => f,
            Err(msg) => return fail(&args.pattern, msg, &func),
        };
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let idents = {
            let mut seen = vec!["__case_files_current".to_owned()];
            files
                .iter()
                .map(|file| {
                    let mut ident = test_ident(file);
                    while seen.contains(&ident) {
                        ident.push('_');
                    }
                    seen.push(ident.clone());
                    format_ident!("{}", ident)
                })
                .collect::<Vec<_>>()
        };
        files
            .into_iter()
            .zip(names)
            .zip(idents)
            .map(|((file, name), ident)| Generated {
                ident,
                file,
                name,
                skip: None,
            })
            .collect()
    };
    let krate = args
        .krate
        .clone()
        .map(|p| quote!(#p))
        .unwrap_or_else(|| quote!(::softprobe));
    let name = &func.sig.ident;
    let redact = &args.redact;
    let headers: Vec<String> = args
        .headers
        .iter()
        .map(|h| h.value().to_ascii_lowercase())
        .collect();
    let suite_file = root.join(&pattern).display().to_string();
    let spec = |test: &Ident, path: &str| {
        quote! {
            #krate::__private::CaseSpec {
                path: #path,
                manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                package: ::core::env!("CARGO_PKG_NAME"),
                test_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#test)),
                source_file: ::core::file!(),
                mode: ::core::option::Option::Some("replay"),
                strict: false,
                redact: &[#(#redact),*],
            }
        }
    };
    let tests = generated.iter().enumerate().map(|(index, g)| {
        let test = &g.ident;
        let path = g.file.display().to_string();
        let spec = spec(test, &path);
        let ignore = g.skip.as_ref().map(|r| quote!(#[ignore = #r]));
        let body = if suite {
            let case_name = &g.name;
            quote! {
                const _: &[u8] = ::core::include_bytes!(#suite_file);
                #krate::__private::run_suite_case(
                    #spec,
                    #krate::__private::SuiteCase {
                        suite: #suite_file,
                        index: #index,
                        name: #case_name,
                    },
                    super::#name,
                )
            }
        } else {
            quote! {
                #krate::__private::run_inbound_replay_with(
                    #spec,
                    #krate::__private::CaseOptions {
                        headers: &[#(#headers),*],
                        exact: &[],
                        partial: false,
                    },
                    super::#name,
                )
            }
        };
        quote! {
            #[::core::prelude::v1::test]
            #ignore
            #(#forwarded)*
            fn #test() {
                const _: &[u8] = ::core::include_bytes!(#path);
                #body
            }
        }
    });
    let listed: Vec<String> = generated
        .iter()
        .map(|g| g.file.display().to_string())
        .collect();
    let guard_ident = format_ident!("__case_files_current");
    let guard_spec = spec(&guard_ident, &pattern);
    let source = if suite {
        quote!(#krate::__private::CaseFiles::Suite(#suite_file))
    } else {
        quote!(#krate::__private::CaseFiles::Glob(#pattern))
    };
    if at_run_time {
        let all = format_ident!("all_cases");
        let spec = spec(&all, &suite_file);
        return quote! {
            #[allow(dead_code)]
            #func
            mod #name {
                /// Lists the suite's cases with this run's environment (its `cases` use a
                /// variable) and runs each of them.
                #[::core::prelude::v1::test]
                #(#forwarded)*
                fn #all() {
                    const _: &[u8] = ::core::include_bytes!(#suite_file);
                    #krate::__private::run_suite_cases(#spec, #suite_file, super::#name)
                }
            }
        };
    }
    quote! {
        #[allow(dead_code)]
        #func
        mod #name {
            #(#tests)*

            /// Fails when case files were added or removed since these tests were generated.
            #[::core::prelude::v1::test]
            fn __case_files_current() {
                #krate::__private::check_case_files(#guard_spec, #source, &[#(#listed),*])
            }
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
        let names: Vec<String> = ["all/a", "All-A", "__case_files_current"]
            .map(String::from)
            .into();
        let ids: Vec<String> = idents(&names).iter().map(|i| i.to_string()).collect();
        assert_eq!(ids, ["all_a", "all_a_2", "__case_files_current_2"]);
    }

    #[test]
    fn globs_match_like_the_run_time_guard() {
        let dir = std::env::temp_dir().join(format!("sp-cases-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cases/deep")).unwrap();
        for f in [
            "b.case.json",
            "a.case.json",
            "a.case.yaml",
            "deep/c.case.json",
        ] {
            std::fs::write(dir.join("cases").join(f), "{}").unwrap();
        }
        let names = |pattern: &str| -> Vec<String> {
            matches(&dir, pattern)
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names("cases/*.case.json"),
            ["cases/a.case.json", "cases/b.case.json"]
        );
        assert_eq!(
            names("cases/[ab].case.*"),
            [
                "cases/a.case.json",
                "cases/a.case.yaml",
                "cases/b.case.json"
            ]
        );
        assert_eq!(names("cases/**/c.case.json"), ["cases/deep/c.case.json"]);
        assert!(names("missing/*.case.json").is_empty());
        let err = matches(&dir, "cases/[.json").unwrap_err();
        assert!(err.starts_with("bad glob \"cases/[.json\""), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_suite_whose_cases_use_a_variable_is_listed_at_run_time() {
        let dir = std::env::temp_dir().join(format!("sp-cases-env-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cases")).unwrap();
        std::fs::write(dir.join("cases/a.case.json"), "{}").unwrap();
        let expand_suite = |text: &str| {
            let suite = dir.join("s.suite.yaml");
            std::fs::write(&suite, text).unwrap();
            let pattern = suite.display().to_string();
            expand(
                quote!(#pattern),
                quote!(
                    async fn app(sp: softprobe::Session) -> String {
                        sp.serve(()).await
                    }
                ),
            )
            .to_string()
        };
        let out = expand_suite("name: s\ncases: ${SOFTPROBE_TEST_UNSET_DIR:-cases}/*.case.json\n");
        assert!(
            !out.contains("option_env"),
            "the macro read the environment: {out}"
        );
        assert!(
            out.contains("fn all_cases ()") && out.contains("run_suite_cases"),
            "no run-time listing test: {out}"
        );
        assert!(!out.contains("fn a ()"), "listed at compile time: {out}");

        let out = expand_suite(
            "name: s\nenv: {token: \"${SOFTPROBE_TEST_TOKEN}\"}\ncases: cases/*.case.json\n",
        );
        assert!(
            out.contains("fn a ()"),
            "no test for cases/a.case.json: {out}"
        );
        assert!(out.contains("fn __case_files_current ()"), "{out}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
