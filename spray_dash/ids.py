"""Component ids: the stable hooks of the UI (documented in docs/ui.md).

Tests and scripts rely on ``LEADERBOARD``, ``EMBEDDING``, ``EXPORT`` and the
``gallery-tile`` class with its ``data-index`` attribute; keep them stable.
"""

# leaderboard page
LEADERBOARD = "leaderboard"
LEADERBOARD_SEARCH = "leaderboard-search"
RUN_INFO = "run-info"
TAU_OVERVIEW = "tau-overview"
NAVIGATE = "navigate"

# class explorer page
CLASS_ID = "explorer-class-id"
VIEW_STATE = "explorer-view-state"
SELECTION = "explorer-selection"
MAP_SELECT = "explorer-map"
SPECTRAL_DIMS = "explorer-spectral-dims"
SPECTRAL_X = "explorer-spectral-x"
SPECTRAL_Y = "explorer-spectral-y"
COLOR_SELECT = "explorer-color"
K_SELECT = "explorer-k"
EMBEDDING = "embedding"
EMBEDDING_TOOLTIP = "embedding-tooltip"
SPECTRUM = "spectrum"
CLUSTER_BUTTONS = "cluster-buttons"
CLUSTER_BUTTON = "cluster-button"  # pattern-matching type: {"type": CLUSTER_BUTTON, "index": c}
CLEAR_SELECTION = "clear-selection"
SELECTION_SUMMARY = "selection-summary"
GALLERY = "gallery"
GALLERY_PAGE = "gallery-page"
GALLERY_PREV = "gallery-prev"
GALLERY_NEXT = "gallery-next"
GALLERY_PAGER = "gallery-pager"
GALLERY_MODE = "gallery-mode"
GALLERY_OPACITY = "gallery-opacity"
GALLERY_TILE = "gallery-tile"  # pattern-matching type: {"type": GALLERY_TILE, "index": i}
PROTOTYPE = "prototype"
EXPORT = "export"
EXPORT_CSV = "export-csv"
EXPORT_JSON = "export-json"
EXPORT_DOWNLOAD = "export-download"
FOCUS = "explorer-focus"
URL_SYNC = "explorer-url-sync"
URL_SYNC_DONE = "explorer-url-sync-done"
