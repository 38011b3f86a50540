"""Physics: pure k-space functions (fft), undersampling masks, and the forward operators."""
