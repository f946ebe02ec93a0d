"""Example projects and icons. pyproject.toml installs this folder as the package
`studio.resources`, so an installed studio has them too (studio/bundled.py finds them)."""
