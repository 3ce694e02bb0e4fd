//! The ONNX Runtime shared library, loaded at run time (ort's `load-dynamic`): Sluice
//! finds it from `ORT_DYLIB_PATH`, else inside the installed `onnxruntime` Python wheel, and
//! says exactly what to do when it cannot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ort::environment::Environment;

/// The ONNX Runtime version the `api-31` bindings need (its minor version must match).
pub const REQUIRED_VERSION: &str = "1.31";

const INSTALL_HINT: &str = "install it with `python3 -m pip install onnxruntime==1.31.1` (`bash scripts/bootstrap.sh` \
     does), or set ORT_DYLIB_PATH to its libonnxruntime.so.1.31.x";

/// Where the ONNX Runtime library is.
pub fn library_path() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ORT_DYLIB_PATH is '{}', which is not a file; {INSTALL_HINT}", path.display()))
        };
    }
    let output = Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"])
        .output()
        .map_err(|e| format!("ONNX Runtime was not found (cannot run python3: {e}); {INSTALL_HINT}"))?;
    if !output.status.success() {
        return Err(format!(
            "ONNX Runtime was not found: the Python package 'onnxruntime' is not installed; {INSTALL_HINT}"
        ));
    }
    let package = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    find_library(&package.join("capi")).ok_or_else(|| {
        format!(
            "the onnxruntime package at '{}' has no libonnxruntime.so {REQUIRED_VERSION}.x; {INSTALL_HINT}",
            package.display()
        )
    })
}

/// The versioned library file in a wheel's `capi` directory.
fn find_library(capi: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libonnxruntime.so.{REQUIRED_VERSION}.")))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The process-wide ONNX Runtime environment, loaded on first use.
pub fn environment() -> Result<&'static Environment, String> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = library_path()?;
            ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from '{}': {e}; {INSTALL_HINT}", path.display()))?
                .with_name("sluice")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ort::session::Session;
    use ort::value::Tensor;

    /// The committed fraud model scores two transactions as Python's onnxruntime does
    /// (the values `models/make_fraud_model.py`'s model gives there).
    #[test]
    fn scores_the_committed_fraud_model_like_python() {
        let env = environment().unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fraud_classifier_probs.onnx");
        let mut session = Session::builder(env).unwrap().commit_from_file(model).unwrap();
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        assert_eq!(
            names,
            ["amount", "hour_of_day", "merchant_category", "user_age", "user_country", "txn_velocity_24h"]
        );
        let ints = |v: [i64; 2]| Tensor::from_array(([2usize, 1], v.to_vec())).unwrap();
        let countries = ["XX".to_string(), "US".to_string()];
        let inputs = ort::inputs![
            "amount" => Tensor::from_array(([2usize, 1], vec![900.0f32, 20.0])).unwrap(),
            "hour_of_day" => ints([2, 14]),
            "merchant_category" => ints([13, 2]),
            "user_age" => ints([30, 50]),
            "user_country" => Tensor::from_string_array(([2usize, 1], &countries[..])).unwrap(),
            "txn_velocity_24h" => ints([12, 2]),
        ];
        let outputs = session.run(inputs).unwrap();
        let (_, probabilities) = outputs["probabilities"].try_extract_tensor::<f32>().unwrap();
        assert!((probabilities[1] - 0.990_758_06).abs() < 1e-6, "{probabilities:?}");
        assert!((probabilities[3] - 0.010_284_36).abs() < 1e-6, "{probabilities:?}");
    }
}
