"""Similarity search across classes: find a relevance pattern (an artifact) in every class.

Modules
-------
vectors  heatmaps as unit-length vectors of pooled |relevance| (why the absolute value)
index    the faiss index: exact inner product up to :data:`EXACT_LIMIT` vectors, HNSW beyond
query    build the run's index (``RUN/search/``) and answer queries
"""
from .index import EXACT_LIMIT, build_index, search
from .query import build_search_index, find_similar, query_vector
from .vectors import GRID, load_heatmap, relevance_vectors

__all__ = ["EXACT_LIMIT", "GRID", "build_index", "search", "build_search_index", "find_similar", "query_vector",
           "relevance_vectors", "load_heatmap"]
