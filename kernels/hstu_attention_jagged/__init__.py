"""hstu_attention over jagged rows: tokens of all rows concatenated, delimited by offsets."""
