"""`banana live`: live mode in the browser (a page on 127.0.0.1; Ctrl-C stops it)."""

from __future__ import annotations

from pathlib import Path

import click

from banana_sdk.live_server import DEFAULT_PORT, LOOPBACK


@click.command()
@click.option("--bundle", type=click.Path(path_type=Path), required=True, help="Banana LiteRT bundle directory.")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1 (0: any free).")
@click.option("--host", default=LOOPBACK, show_default=True,
              help="Loopback only (127.0.0.1 or localhost): the page has no authentication.")
@click.option("--steps", type=int, default=1, show_default=True, help="Sampler steps per frame.")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed (the same for every frame).")
@click.option("--decoder", type=click.Choice(["full", "preview"]), default="full", show_default=True,
              help="preview: the bundle's preview_decode (the full decoder, said so on the page, if it has none).")
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT CPU threads.")
def live(bundle: Path, port: int, host: str, steps: int, seed: int, decoder: str, threads: int) -> None:
    """Serve live mode on 127.0.0.1: a page whose image follows the prompt as you type."""
    from banana_sdk.live_server import LiveServer, serve_live
    from banana_sdk.runtime.live import Decoder, LiveSession

    def ready(server: LiveServer, session: LiveSession) -> None:
        note = f"; preview asked for, but the {session.decoder_fallback}" if session.decoder_fallback else ""
        click.echo(f"banana live: {server.url}  ({bundle}, {steps} step(s), seed {seed}, "
                   f"{session.decoder.value} decoder{note})")
        click.echo("open it in a browser; press Ctrl-C to stop")

    summary = serve_live(bundle, port=port, host=host, steps=steps, seed=seed, decoder=Decoder(decoder),
                         threads=threads, on_ready=ready)
    c = summary.counters
    click.echo(f"stopped ({c['shown']} frames shown, {c['refused']} prompts refused)")


COMMANDS = (live,)
