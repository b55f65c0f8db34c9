"""One printer per backend: IR nodes → source text. Decisions about expressions live here, layout in
templates/, and what to generate in codegen.lower.lower."""
