//! With every weight dequantized (candle's `CANDLE_DEQUANTIZE_ALL`, read once per
//! process, so this test has its own binary) both implementations compute in f32 and must
//! agree closely: this checks our GGUF loader, rotary layout and attention, not kernels.

#[path = "common/oracle.rs"]
mod oracle;

#[test]
fn matches_quantized_llama_on_dequantized_weights() {
    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let (diff, ours, theirs) = oracle::compare_with_quantized_llama(32);
    assert!(diff < 1e-3, "max |logit difference| {diff}");
    assert_eq!(ours, theirs, "greedy continuation differs");
}
