"""The post-mortem's real front end, played by the kit and set against the model.

- :mod:`simkit.realfront.stack`: the real stack (uvicorn backend, Next.js front end) held
  open while real Chromium tabs play a scenario on its page (:class:`PostmortemStack`);
- :mod:`simkit.realfront.model`: what the virtual runtime predicts for the same run, and the
  comparison with its tolerances (:func:`predict`, :func:`compare`);
- :mod:`simkit.realfront.strictmode`: what one page load under ``next dev`` does with its
  sockets (React StrictMode's double mount), measured and predicted.
"""
