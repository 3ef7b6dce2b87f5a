//! BoringSSL linked into an executable without symbols (Bun, and programs
//! built with it such as Claude Code): is it there, and where are SSL_read,
//! SSL_write and SSL_new? The scan, in the order it runs:
//!
//! 1. Detect: a `…/ssl/ssl_lib.cc` string in a read-only segment, which
//!    code loads. Without it the program is not probed (the common case:
//!    one memmem); a string nothing loads is no library either.
//! 2. Every load of that string into rcx (`mov ecx, imm32`, or `lea rcx,
//!    [rip+x]` in position-independent code) followed by a call is an error
//!    report `ERR_put_error(16, 0, reason, file, line)` (sites.rs).
//! 3. The function holding each report (funcs.rs), then which function is
//!    which by its reasons and their order in the file (classify.rs).
//! 4. Confirm: one error function for all reports, one candidate per role,
//!    each start called directly, reaching its reports, in source order,
//!    and reading its three arguments on entry. Anything less is reported
//!    as "looks like BoringSSL, not located" and nothing is attached.
//!
//! Results are cached by ELF BuildID (cache.rs).

mod cache;
mod classify;
mod elf;
mod funcs;
mod sites;

pub use cache::Cache;
use classify::Reports;
use std::collections::HashMap;
use std::path::Path;

/// Bumped whenever the scan's rules change: older cached results are ignored.
pub const SCAN_VERSION: u32 = 1;
const ERR_LIB_SSL: u32 = 16;

/// What the scan says of one executable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Outcome {
    /// No BoringSSL in it.
    Absent,
    /// It looks like BoringSSL (`library` is the path string found), but the
    /// functions were not located for sure: nothing is attached.
    Unlocated {
        library: String,
        why: String,
    },
    Located(Located),
}

/// File offsets (what uprobes take) and addresses of the functions found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Located {
    pub library: String,
    pub ssl_write: Function,
    pub ssl_read: Function,
    pub ssl_new: Option<Function>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Function {
    #[serde(with = "hex_u64")]
    pub va: u64,
    #[serde(with = "hex_u64")]
    pub file_offset: u64,
    /// The first bytes of its code, hex: a cached result is used only if
    /// the file still has them there.
    pub head: String,
}

/// Bytes of each function kept in [`Function::head`].
const HEAD: usize = 16;

impl Function {
    fn at(img: &elf::Image, va: u64) -> Option<Function> {
        Some(Function {
            va,
            file_offset: img.file_offset(va)?,
            head: hex::encode(img.bytes_at(va, HEAD)?),
        })
    }
}

/// Scans `path`, or takes the result cached for its BuildID. The second
/// value says whether the cache answered.
pub fn scan_cached(path: &Path, cache: Option<&Cache>) -> (Outcome, bool) {
    let img = match elf::Image::open(path) {
        Ok(img) => img,
        Err(_) => return (Outcome::Absent, false),
    };
    let build_id = img.build_id.clone();
    if let (Some(c), Some(id)) = (cache, &build_id) {
        if let Some(found) = c.get(id, &img) {
            return (found, true);
        }
    }
    let strings = sites::path_strings(&img);
    if strings.is_empty() {
        return (Outcome::Absent, false);
    }
    let references: Vec<u64> = strings
        .iter()
        .flat_map(|s| sites::references(&img, s.va))
        .collect();
    if references.is_empty() {
        return (Outcome::Absent, false);
    }
    let library = strings
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let outcome = match locate(&img, &strings, &references) {
        Ok(located) => Outcome::Located(Located { library, ..located }),
        Err(why) => Outcome::Unlocated { library, why },
    };
    if let (Some(c), Some(id)) = (cache, &build_id) {
        c.put(id, &outcome);
    }
    (outcome, false)
}

fn locate(
    img: &elf::Image,
    strings: &[sites::PathString],
    references: &[u64],
) -> Result<Located, String> {
    if strings.iter().any(|s| s.text.contains("aws-lc")) {
        // AWS-LC keeps BoringSSL's file but not its functions' layout.
        return Err("AWS-LC's libssl, whose functions these rules do not describe".into());
    }
    let all = sites::sites(img, references);
    // The error function: the callee of the library's reports (all of them, or it is no match).
    let mut callees: HashMap<u64, usize> = HashMap::new();
    for s in all.iter().filter(|s| s.lib == Some(ERR_LIB_SSL)) {
        *callees.entry(s.callee).or_default() += 1;
    }
    let [(&err_put_error, _)] = callees.iter().collect::<Vec<_>>()[..] else {
        return Err(format!(
            "{} error functions called from ssl_lib.cc's {} reports, not one",
            callees.len(),
            all.len()
        ));
    };
    let reports: Vec<_> = all
        .iter()
        .filter(|s| s.callee == err_put_error && s.lib == Some(ERR_LIB_SSL) && s.zero == Some(0))
        .filter_map(|s| Some((s.at, s.reason?, s.line?)))
        .collect();
    let targets = funcs::CallTargets::near(img, &reports.iter().map(|r| r.0).collect::<Vec<_>>());
    let mut funcs = Reports::new();
    for &(at, reason, line) in &reports {
        if let Some(start) = funcs::start_of(img, at, &targets) {
            funcs.entry(start).or_default().insert((reason, line));
        }
    }
    let found = classify::classify(img, &funcs, &targets)?;
    let function = |va| Function::at(img, va).ok_or(format!("{va:#x} is not in the file"));
    Ok(Located {
        library: String::new(),
        ssl_write: function(found.write)?,
        ssl_read: function(found.read)?,
        ssl_new: found.new.map(function).transpose()?,
    })
}

/// Addresses as "0x…" text, as tools print them.
mod hex_u64 {
    pub fn serialize<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| serde::de::Error::custom("no 0x"))?;
        u64::from_str_radix(digits, 16).map_err(serde::de::Error::custom)
    }
}
