// Expose `cfg(Py_3_11)`, `cfg(Py_3_12)`, ... for version-specific code.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
