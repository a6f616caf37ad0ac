"""skewwatch."""
