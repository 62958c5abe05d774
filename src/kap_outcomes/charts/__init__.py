"""Charts of scores over time: a pure SVG renderer and the data it draws."""
