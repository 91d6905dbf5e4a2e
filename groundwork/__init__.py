"""The shared ground of Parley: errors, model resolution, chat format, data loading, languages, the run layout,
distributed helpers, config I/O and every recipe section. It imports no stage package and no CLI."""
