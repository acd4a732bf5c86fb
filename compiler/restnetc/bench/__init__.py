"""Device benchmarking: reading TFLite ``benchmark_model`` logs taken on a device."""
