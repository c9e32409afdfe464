"""Media: video sources and decoders, audio decoding, contact sheets."""
