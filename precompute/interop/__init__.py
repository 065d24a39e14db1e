"""Interoperability with other SpRAy tools: ViRelAy and CoRelAy projects, both ways.

=======================  ===================================================================
module                   concept
=======================  ===================================================================
``virelay_format``       the project layout ViRelAy 0.6.1 reads, names and eigenvalue order
``virelay_export``       :func:`export_virelay`: a run store as a ViRelAy project
``virelay_project``      :class:`ViRelAyProject`: reading a project, checked file by file
``imported_analysis``    :func:`analyse_imported`: SpRAy's analysis completed around an imported one
``virelay_import``       :func:`import_virelay`: a ViRelAy/CoRelAy project as a run store
=======================  ===================================================================

``docs/interop.md`` describes both directions for users. h5py is imported only when a
project is read or written.
"""
from .imported_analysis import analyse_imported
from .virelay_export import export_virelay
from .virelay_import import import_virelay
from .virelay_project import ViRelAyProject

__all__ = ["export_virelay", "import_virelay", "analyse_imported", "ViRelAyProject"]
