"""Qt views of the studio (PySide6 + pyqtgraph). Views show and edit the Qt-free core in
`studio`; they never own state the core needs."""
