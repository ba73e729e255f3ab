"""A local web page to sample weights files and watch the denoising (``python -m ppddpm.web``).

Beside the command line in the layers: it uses the same set-up as ``--mode denoise``
(``pipeline.prepare_sampling``), the sampler registry and factory, the samplers' progressive
generator and the weights-file readers. ``command`` checks the command line; the server
(``app``, ``server``: Starlette and uvicorn, the web extra) is imported only after that.
``catalog``: the files under --models; ``jobs``: the one-at-a-time queue; ``kinds``: the job
kinds (sampling now; an editing mode is one more entry); ``warm``: the last model kept loaded.
"""
