//! The analyzer of `opensoc analyze`'s default path on the real default model (fetched
//! on first use) with the built-in adapter, structured fields only.

use opensoc_analyze::{Analyzer, AnalyzerConfig};
use opensoc_model::{fetch, Adapter, LoadOptions, Model, ModelSource, WeightFormat};

pub fn builtin_analyzer() -> Analyzer {
    let path = fetch::ensure_default_model().expect("the default model can be fetched");
    let mut model = Model::load(
        &ModelSource::Gguf(path),
        LoadOptions {
            weight_format: WeightFormat::Mixed,
        },
    )
    .unwrap();
    model.attach(&Adapter::builtin().unwrap(), false).unwrap();
    Analyzer::new(
        model,
        AnalyzerConfig {
            narrative: None,
            ..AnalyzerConfig::default()
        },
    )
    .unwrap()
}
