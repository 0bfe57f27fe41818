"""``facefit gallery``: build, change, search and describe a face gallery directory."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

from facefit.errors import InputError
from facefit.files import sha256_file

URI_HELP = (
    "A gallery in Milvus instead of a directory: milvus://HOST:PORT/COLLECTION (a server; "
    "token in MILVUS_TOKEN) or milvus:PATH.db/COLLECTION (a Milvus Lite file)."
)


def GALLERY_OPTION(command):
    """``-g DIR`` or ``--uri URL``, passed to ``command`` as ``gallery_path`` (a Path or a URL).

    (Named like the option constants above: it decorates a command the same way.)
    """

    @functools.wraps(command)
    def with_location(*args, gallery_path=None, uri=None, **kwargs):
        if (gallery_path is None) == (uri is None):
            raise click.UsageError("give the gallery: -g DIRECTORY or --uri milvus://…")
        return command(*args, gallery_path=gallery_path if uri is None else uri, **kwargs)

    with_location = click.option(
        "--uri", envvar="FACEFIT_GALLERY_URI", help=URI_HELP + " (or set FACEFIT_GALLERY_URI)"
    )(with_location)
    return click.option(
        "-g",
        "--gallery",
        "gallery_path",
        envvar="FACEFIT_GALLERY",
        type=click.Path(file_okay=False, path_type=Path),
        help="The gallery directory (or set FACEFIT_GALLERY).",
    )(with_location)


DETECTOR_OPTION = click.option(
    "--detector", default="yunet", show_default=True, help="Face detector plugin."
)
FALLBACK_OPTION = click.option(
    "--sketch-fallback",
    is_flag=True,
    help="Align framed drawings without a detected face at the usual portrait position.",
)


LOCK_TIMEOUT_OPTION = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=600,
    show_default=True,
    help="Seconds to wait while another process changes the same gallery.",
)

PYTHON_TO_CLI = {
    "use sketch_fallback=True": "pass --sketch-fallback",
}
"""Advice in library messages that names a Python parameter, and the same advice as a flag."""


def for_cli(message: str) -> str:
    """A library message with its Python-parameter advice turned into the CLI flag."""
    for python, flag in PYTHON_TO_CLI.items():
        message = message.replace(python, flag)
    return message


@contextlib.contextmanager
def _changing(gallery_path: Any, lock_timeout: float):
    """Be the only process changing a gallery directory, from its load to its save.

    A second ``gallery add`` waits here (and says so) instead of failing with
    "saved by another process"; a gallery in a database has no directory to lock.
    """
    from facefit.gallery.atomic import writer_lock

    if not isinstance(gallery_path, Path) or not gallery_path.is_dir():
        yield  # a database URL, or no gallery: loading says what is wrong
        return

    def waiting() -> None:
        click.echo(
            f"{gallery_path}: another process is changing this gallery; waiting for it "
            f"(up to {lock_timeout:g} s, --lock-timeout)",
            err=True,
        )

    try:
        with writer_lock(gallery_path, timeout=lock_timeout, on_wait=waiting):
            yield
    except Exception as exc:
        from facefit.gallery.atomic import GalleryLockTimeout

        if isinstance(exc, GalleryLockTimeout):
            raise GalleryLockTimeout(f"{exc}, or raise --lock-timeout") from None
        raise


def _show_progress(no_progress: bool) -> bool:
    """A bar only where a person watches: not under --no-progress, not into a file or pipe."""
    return not no_progress and sys.stderr.isatty()


def parse_options(pairs: tuple[str, ...], flag: str = "--retriever-option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs → options; a value is read as a TOML value (``8``, ``0.5``,
    ``true``, ``"text"``), and as plain text when it is not one (``metric=ip``)."""
    import tomllib

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"{flag} {pair!r}: expected KEY=VALUE, e.g. {flag} ef=128")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        options[key] = value
    return options


def _registry(ctx: click.Context) -> Any:
    """The registry passed in ``ctx.obj["registry"]`` (tests, embedding apps), else the installed one."""
    obj = ctx.find_root().obj
    if isinstance(obj, dict) and obj.get("registry") is not None:
        return obj["registry"]
    from facefit.registry import Registry

    return Registry.load()


def _embedder(registry: Any, detector: str, encoder: str, sketch_fallback: bool) -> Any:
    from facefit.imaging.faces import FaceEmbedder

    return FaceEmbedder.from_registry(
        registry, detector=detector, encoder=encoder, sketch_fallback=sketch_fallback
    )


def _items(
    directory: Path, csv_path: Path | None, image_column: str | None, identity_column: str | None
):
    from facefit.gallery import build

    if csv_path is not None:
        return build.from_csv(
            directory, csv_path, image_column=image_column, identity_column=identity_column
        )
    return build.from_folders(directory)


def _report(report: Any, gallery: Any, path: Path) -> None:
    for source, why in report.skipped:
        click.echo(f"  skipped {source}: {for_cli(why)}", err=True)
    no_face = len(report.no_face)
    others = len(report.skipped) - no_face
    click.echo(
        f"{path}: added {report.added} faces of {len(report.identities)} identities; "
        f"skipped {len(report.skipped)} images ({no_face} without a detectable face, {others} other); "
        f"the gallery holds {len(gallery)} faces of {gallery.num_identities} identities"
    )


@click.group("gallery")
def gallery() -> None:
    """Face galleries: mugshots with identities, searched by face."""


@gallery.command("build")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the gallery to.",
)
@click.option("--uri", help=URI_HELP + " Builds there instead of --out (retriever milvus).")
@click.option(
    "--identities",
    "csv_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CSV naming each image's identity (paths relative to DIRECTORY); "
    "default: DIRECTORY/<identity>/<image>.",
)
@click.option("--image-column", help="CSV column of image paths (default: image, path, file…).")
@click.option("--identity-column", help="CSV column of identities (default: identity, name…).")
@click.option("--encoder", default="sface", show_default=True, help="Face encoder plugin.")
@DETECTOR_OPTION
@click.option(
    "--retriever",
    default="auto",
    show_default=True,
    help="Retriever plugin: exact, hnswlib, scann, or auto (exact for small galleries, "
    "then scann where installed, else hnswlib).",
)
@click.option(
    "--retriever-option",
    "retriever_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the retriever plugin (repeatable), e.g. a vendor retriever's "
    "--retriever-option nlist=64; stored with the gallery.",
)
@click.option("--M", "m", type=int, help="hnswlib: links per node.")
@click.option("--ef-construction", type=int, help="hnswlib: build-time search breadth.")
@click.option(
    "--ef", type=int, help="hnswlib: query-time search breadth (stored with the gallery)."
)
@click.option(
    "--leaves-to-search",
    type=float,
    help="scann: share of the index's leaves scanned per query, kept as given (default: "
    "tuned for recall@10 0.99 each time the index trains).",
)
@click.option(
    "--recall",
    type=float,
    help="hnswlib or scann: then set ef (leaves-to-search) to the smallest finding this "
    "share of the exact top-10 (as `facefit gallery tune`).",
)
@FALLBACK_OPTION
@click.option("--force", is_flag=True, help="Replace a gallery already at --out.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def build_command(
    ctx,
    directory,
    out,
    uri,
    csv_path,
    image_column,
    identity_column,
    encoder,
    detector,
    retriever,
    retriever_options,
    m,
    ef_construction,
    ef,
    leaves_to_search,
    recall,
    sketch_fallback,
    force,
    no_progress,
) -> None:
    """Enrol the face images under DIRECTORY into a new gallery at --out.

    Identities are the sub-folder names (DIRECTORY/<identity>/<image>) or come from
    --identities CSV. Images without a detectable face are listed and skipped.
    """
    from facefit.gallery import GalleryError, GalleryIndex, build

    if (out is None) == (uri is None):
        raise click.UsageError(
            "say where to build the gallery: --out DIRECTORY or --uri milvus://…"
        )
    if out is not None and out.is_dir() and any(out.iterdir()):
        if not force:
            raise GalleryError(
                f"{out}: already exists and is not empty; pass --force to replace it"
            )
        from facefit.gallery.persist import check_not_foreign

        check_not_foreign(out)  # --force replaces a gallery, never other files
    options = {
        k: v
        for k, v in (("M", m), ("ef_construction", ef_construction), ("ef", ef))
        if v is not None
    }
    if uri is not None:
        if retriever not in ("auto", "milvus"):
            raise GalleryError(f"--uri builds a gallery in Milvus: drop --retriever {retriever}")
        retriever = "milvus"
        options.update(uri=uri, mode="replace" if force else "create")
    elif options and retriever != "hnswlib":
        raise GalleryError(
            "--M, --ef-construction and --ef are hnswlib options: add --retriever hnswlib"
        )
    if leaves_to_search is not None:
        if retriever != "scann":
            raise GalleryError("--leaves-to-search is a scann option: add --retriever scann")
        options["leaves_to_search"] = leaves_to_search
        options["recall_target"] = None  # as given, not re-tuned when the index trains
    extra = parse_options(retriever_options)
    if extra and retriever == "auto":
        raise GalleryError(
            "--retriever-option needs a named retriever: add --retriever NAME "
            "(auto may pick any of exact, hnswlib or scann)"
        )
    options.update(extra)
    items = _items(directory, csv_path, image_column, identity_column)
    registry = _registry(ctx)
    embedder = _embedder(registry, detector, encoder, sketch_fallback)
    index = GalleryIndex.create(
        embedder.encoder,
        retriever=retriever,
        expected_faces=len(items),
        registry=registry,
        **options,
    )
    try:  # faces go to Milvus as they are enrolled: a build that fails drops its collection
        report = build.enrol(index, embedder, items, progress=_show_progress(no_progress))
        if not report.added:
            _report(report, index, out or uri)
            raise GalleryError(f"{directory}: no face could be enrolled from {len(items)} images")
        if recall is not None:
            _tune_after_build(index, recall)
        where = index.save(out, overwrite=force) if uri is None else index.save()
    except BaseException:
        if uri is not None:
            _drop_quietly(index.retriever)
        raise
    _report(report, index, where)


def _searched_exactly(index: Any) -> bool:
    """Whether the gallery's retriever searches exactly (nothing to tune): one that
    declares no search breadth, or one that trains its index (``scann``) below the
    size at which it trains."""
    retriever = index.retriever
    return retriever.search_breadth is None or not retriever.trained


def _tune_after_build(index: Any, recall: float) -> None:
    if _searched_exactly(index):
        click.echo(f"--recall: {len(index)} faces are searched exactly; nothing to tune")
        return
    tuning = index.tune(recall)
    click.echo(
        f"{tuning.option}={tuning.value}: recall@10 {tuning.recall:.4f} "
        f"on {tuning.sample} stored faces"
    )


@gallery.command("add")
@GALLERY_OPTION
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--identity", help="Identity of every image in PATHS (files or folders).")
@click.option(
    "--identities",
    "csv_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CSV naming each image's identity (paths relative to the one PATH).",
)
@click.option("--image-column")
@click.option("--identity-column")
@DETECTOR_OPTION
@FALLBACK_OPTION
@LOCK_TIMEOUT_OPTION
@click.option("--no-progress", is_flag=True)
@click.pass_context
def add_command(
    ctx,
    gallery_path,
    paths,
    identity,
    csv_path,
    image_column,
    identity_column,
    detector,
    sketch_fallback,
    lock_timeout,
    no_progress,
) -> None:
    """Add images to a gallery: PATHS laid out as DIR/<identity>/<image>, or --identity NAME.

    Exits with status 2 when no face was added (every image skipped, listed).
    """
    from facefit.gallery import GalleryError, build

    if identity is not None:
        if not identity.strip():
            raise GalleryError("--identity: give a non-empty name")
        items = build.of_one_identity(paths, identity)
    elif csv_path is not None:
        if len(paths) != 1 or not paths[0].is_dir():
            raise GalleryError("with --identities CSV, give exactly one image directory")
        items = _items(paths[0], csv_path, image_column, identity_column)
    else:
        if not all(p.is_dir() for p in paths):
            raise GalleryError(
                "image files need --identity NAME (folders are read as DIR/<identity>/)"
            )
        items = [item for p in paths for item in build.from_folders(p)]
    if not items:
        raise GalleryError("no image files found in " + ", ".join(map(str, paths)))
    registry = _registry(ctx)
    with _changing(gallery_path, lock_timeout):
        report, index = _add(registry, gallery_path, items, detector, sketch_fallback, no_progress)
    _report(report, index, gallery_path)
    if not report.added:
        raise GalleryError(
            f"{gallery_path}: nothing was added; all {len(items)} images were skipped "
            "(reasons above)"
        )


def _add(registry, gallery_path, items, detector, sketch_fallback, no_progress):
    """Load, enrol and save (under the caller's writer lock); the report and the gallery."""
    from facefit.gallery import GalleryIndex, build

    index = GalleryIndex.load(gallery_path, registry=registry)
    embedder = _embedder(registry, detector, index.encoder.name, sketch_fallback)
    report = build.enrol(index, embedder, items, progress=_show_progress(no_progress))
    if report.added:
        index.save()
    return report, index


@gallery.command("remove")
@GALLERY_OPTION
@click.option("--identity", "identities", multiple=True, help="Remove every face of this identity.")
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Remove the face enrolled from this image (matched by content, else by path).",
)
@click.option("--label", "labels", multiple=True, type=int, help="Remove the face with this label.")
@LOCK_TIMEOUT_OPTION
@click.pass_context
def remove_command(ctx, gallery_path, identities, images, labels, lock_timeout) -> None:
    """Remove faces from a gallery by identity, image or label."""
    from facefit.gallery import GalleryError

    if not (identities or images or labels):
        raise GalleryError("say what to remove: --identity NAME, --image PATH or --label N")
    with _changing(gallery_path, lock_timeout):
        _remove(_registry(ctx), gallery_path, identities, images, labels)


def _remove(registry, gallery_path, identities, images, labels) -> None:
    from facefit.gallery import GalleryError, GalleryIndex

    index = GalleryIndex.load(gallery_path, registry=registry)
    chosen: set[int] = set(labels)
    for name in identities:
        found = index.find(identity=name)
        if not found:
            raise GalleryError(f"identity {name!r} is not in the gallery {gallery_path}")
        chosen.update(r.label for r in found)
    for image in images:
        found = index.find(sha256=sha256_file(image, "image")) if image.is_file() else []
        found = found or index.find(source=str(image.resolve()))
        if not found:
            raise GalleryError(f"{image}: no face from this image is in the gallery {gallery_path}")
        chosen.update(r.label for r in found)
    removed = index.remove(sorted(chosen))
    index.save()
    click.echo(
        f"{gallery_path}: removed {removed} faces; "
        f"{len(index)} faces of {index.num_identities} identities remain"
    )


@gallery.command("search")
@GALLERY_OPTION
@click.argument("image", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-k", "k", default=10, show_default=True, help="How many identities (or faces).")
@click.option("--faces", "by_face", is_flag=True, help="Rank faces, not identities.")
@click.option("--ef", type=int, help="hnswlib: search breadth for this search.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@DETECTOR_OPTION
@FALLBACK_OPTION
@click.pass_context
def search_command(
    ctx, gallery_path, image, k, by_face, ef, as_json, detector, sketch_fallback
) -> None:
    """Find the identities (or faces) in a gallery closest to the face in IMAGE."""
    from facefit.gallery import GalleryIndex

    registry = _registry(ctx)
    index = GalleryIndex.load(gallery_path, registry=registry)
    embedder = _embedder(registry, detector, index.encoder.name, sketch_fallback)
    index.check_encoder(embedder.encoder)
    (result,) = embedder.embed_files([image])
    if not result.ok:
        raise InputError(for_cli(result.error))
    if ef is not None:
        breadth = index.retriever.search_breadth
        if breadth is None or breadth.option != "ef":
            raise InputError(f"--ef applies to hnswlib; this gallery uses {index.retriever.name}")
        index.retriever.set_breadth(ef)
    if by_face:
        hits = index.search_faces(result.vector, k)
        rows = [
            {
                "rank": h.rank,
                "identity": h.identity,
                "score": round(h.score, 4),
                "label": h.label,
                "source": h.source,
            }
            for h in hits
        ]
    else:
        hits = index.search(result.vector, k)
        rows = [
            {
                "rank": h.rank,
                "identity": h.identity,
                "score": round(h.score, 4),
                "faces": [
                    {"label": f.label, "score": round(f.score, 4), "source": f.source}
                    for f in h.faces
                ],
            }
            for h in hits
        ]
    if as_json:
        click.echo(json.dumps({"image": str(image), "results": rows}, indent=2))
        return
    for row in rows:
        detail = (
            row["source"]
            if by_face
            else f"{len(row['faces'])} face(s), best {row['faces'][0]['source']}"
        )
        click.echo(f"{row['rank']:>3}  {row['score']:.4f}  {row['identity']}  ({detail})")


@gallery.command("tune")
@GALLERY_OPTION
@click.option("--recall", default=0.99, show_default=True, help="Share of the exact top-k to find.")
@click.option("-k", "k", default=10, show_default=True, help="Top-k the recall is measured on.")
@click.option("--sample", default=200, show_default=True, help="Stored faces used as queries.")
@LOCK_TIMEOUT_OPTION
@click.pass_context
def tune_command(ctx, gallery_path, recall, k, sample, lock_timeout) -> None:
    """Set the search breadth (hnswlib's ef, scann's leaves-to-search) to the smallest
    that finds --recall of the exact top-k, and save it.

    A gallery searched exactly needs no tuning: that is said, and nothing changes.
    """
    with _changing(gallery_path, lock_timeout):
        _tune(_registry(ctx), gallery_path, recall, k, sample)


def _tune(registry, gallery_path, recall, k, sample) -> None:
    from facefit.gallery import GalleryIndex

    index = GalleryIndex.load(gallery_path, registry=registry)
    if _searched_exactly(index):
        train_at = index.retriever.train_at
        until = f" until it holds {train_at} faces" if train_at else ""
        click.echo(
            f"{gallery_path}: its {len(index)} faces are searched exactly (retriever "
            f"{index.retriever.name!r}{until}), so every search already finds the true "
            f"top-{k} (recall 1.0): there is no search breadth to tune; nothing changed"
        )
        return
    tuning = index.tune(recall, k=k, sample=sample)
    for value, measured in tuning.curve:
        click.echo(f"  {tuning.option}={value:<5} recall@{k}={measured:.4f}")
    index.save()
    reached = "reaches" if tuning.recall >= recall else "falls short of"
    click.echo(
        f"{gallery_path}: {tuning.option}={tuning.value} ({reached} {recall} "
        f"with {tuning.recall:.4f}); saved"
    )


@gallery.command("info")
@GALLERY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info_command(ctx, gallery_path, as_json) -> None:
    """Describe a gallery: counts, encoder, retriever and files (checksums verified)."""
    from facefit.gallery import GalleryIndex

    info = GalleryIndex.load(gallery_path, registry=_registry(ctx)).info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    enc = info["encoder"]
    params = ", ".join(f"{k}={v}" for k, v in info["retriever_params"].items())
    click.echo(f"gallery     {info['path'] or gallery_path}")
    click.echo(f"data        {info['location']}")
    click.echo(f"faces       {info['faces']} of {info['identities']} identities")
    click.echo(f"encoder     {enc['name']} (version {enc['version']}, {enc['dim']}-d)")
    click.echo(
        f"retriever   {info['retriever']}{' (auto)' if info['auto_retriever'] else ''}"
        f"{f' ({params})' if params else ''}"
    )
    click.echo(
        f"saved       {info['saved']} (generation {info['generation']}; created {info['created']})"
    )
    if info["files"]:
        click.echo(
            f"size        {sum(info['files'].values()) / 1e6:.1f} MB in {len(info['files'])} files"
        )


@gallery.command("migrate")
@click.argument("source")
@click.option(
    "--to",
    "target",
    required=True,
    help="Where to copy it: a Milvus URL (milvus://HOST:PORT/COLLECTION, "
    "milvus:PATH.db/COLLECTION) or a new directory.",
)
@click.option(
    "--retriever",
    default="auto",
    show_default=True,
    help="For a directory target: exact, hnswlib, scann or auto (by size).",
)
@click.option(
    "--sample", default=100, show_default=True, help="Stored faces searched in both to check."
)
@click.option("--force", is_flag=True, help="Replace a gallery already at --to.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def migrate_command(ctx, source, target, retriever, sample, force, no_progress) -> None:
    """Copy the gallery SOURCE (a directory or a Milvus URL) to --to, and check the copy.

    Counts must match, a sample of faces must keep identity, provenance and vector, and
    searching with them must rank the same identities. A copy that fails is deleted; the
    source is never changed.
    """
    from facefit.gallery import GalleryError, GalleryIndex
    from facefit.gallery.migrate import check_copy, copy_faces
    from facefit.gallery.remote import database_scheme

    registry = _registry(ctx)
    src = GalleryIndex.load(source if database_scheme(source) else Path(source), registry=registry)
    scheme = database_scheme(target)
    if scheme is None:
        out = Path(target)
        if out.exists() and any(out.iterdir()) and not force:
            raise GalleryError(
                f"{out}: already exists and is not empty; pass --force to replace it"
            )
        copy = GalleryIndex.create(
            src.encoder, retriever=retriever, expected_faces=len(src), registry=registry
        )
    else:
        if retriever != "auto":
            raise GalleryError(f"--to {target} is a gallery in {scheme}: drop --retriever")
        mode = "replace" if force else "create"
        copy = GalleryIndex.create(
            src.encoder, retriever=scheme, registry=registry, uri=target, mode=mode
        )
    try:
        pairs = copy_faces(src, copy, progress=_show_progress(no_progress))
        check = check_copy(src, copy, pairs, sample=sample)
        if not check.ok:
            raise GalleryError(f"{target}: the copy does not match: " + "; ".join(check.problems))
        where = copy.save() if scheme else copy.save(Path(target), overwrite=force)
    except BaseException:
        if scheme:  # nothing half-written is left behind
            _drop_quietly(copy.retriever)
        raise
    click.echo(
        f"{source} -> {where}: {check.faces[1]} faces of {check.identities[1]} identities; "
        f"checked {check.sampled} faces: own identity first {check.own_identity_first:.3f}, "
        f"top identities agree {check.top_identity_overlap:.3f}"
    )


def _drop_quietly(retriever: Any) -> None:
    """Delete a failed copy's collection; if even that fails, say so and carry on."""
    try:
        retriever.drop()
    except Exception as exc:
        click.echo(f"could not delete the unfinished copy in {retriever.where}: {exc}", err=True)
