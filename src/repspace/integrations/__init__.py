"""repspace collections and encoders inside the frameworks applications are built with.

    from repspace.integrations.langchain import RepspaceVectorStore, RepspaceEmbeddings   # pip install repspace[langchain]
    from repspace.integrations.llamaindex import RepspaceVectorStore, RepspaceEmbedding   # pip install repspace[llamaindex]

This package imports nothing itself: each submodule imports its framework only when it is imported.
See docs/integrations.md.
"""
