"""Crash-safe dataset storage: one OME-Zarr (NGFF 0.5) image per z-stack.

Layout of a dataset folder::

    DATASET/
      manifest.json        identity and status (atomic rewrite: temp file + os.replace)
      journal.jsonl        append-only: one JSON line per committed stack,
                           flushed + fsync'd
      t0000_p0000_g0000.ome.zarr/
                           one NGFF 0.5 image (Zarr v3) per committed stack,
                           axes (c, z, y, x), array "0", one uncompressed chunk
                           file per plane (0/c.<c>.<z>.0.0); per-plane metadata
                           in the group attributes under ["pairscope"]["planes"]
      .staging/            stacks being written; never read as data
        orphans/           complete stack folders a crash left unjournaled
                           (moved here by Dataset.resume; safe to delete)

Life of a stack: `Dataset.begin_stack` makes a `StackWriter` in
``.staging/<name>.ome.zarr``; each `StackWriter.write_plane` writes its chunk
file at once; `StackWriter.commit` refuses missing planes, writes the NGFF
metadata, fsyncs the folder, renames it into the dataset, and only then appends
the journal line ``{"stack", "path", "planes", "committed_at", "sha256"}``
(SHA-256 of the pixels as stored: little-endian, C order c, z, y, x).

Crash safety: a kill at any moment leaves every committed stack whole. The
journal is the source of truth; a torn last line is ignored and the next append
starts on a fresh line; a stack folder without a journal line is not committed
and `Dataset.resume` moves it to ``.staging/orphans``; partial stacks only ever
live in ``.staging``, which `Dataset.resume` empties.

Modules: ``dataset`` (`Dataset`), ``stack_writer`` (`StackWriter`), ``spec``
(`StackSpec`), ``journal``, ``manifest``, ``ngff``, ``reader``, ``verify``,
``durable`` and ``writer_lock``; beside the datasets, ``session`` (correlation
session files), ``ome_tiff`` (single OME-TIFF stacks) and ``recorded_paths``.

Read a committed stack with any Zarr v3 / OME-Zarr 0.5 reader, e.g.
``zarr.open_group(DATASET / "t0000_p0000_g0000.ome.zarr", mode="r")["0"]``.
"""
