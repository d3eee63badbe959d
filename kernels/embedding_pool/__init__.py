"""Jagged sum/mean pooling of embedding rows: one bag of ids per row, given values and offsets."""
