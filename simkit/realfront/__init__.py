"""The post-mortem's real front end, played by the kit and set against the model.

- :mod:`simkit.realfront.stack`: the real stack (uvicorn backend, Next.js front end) held
  open while real Chromium tabs play a scenario on its page (:class:`PostmortemStack`);
- :mod:`simkit.realfront.model`: what the virtual runtime predicts for the same run, with
  its spread over seeds, and the comparison with its tolerances (:func:`predict`,
  :func:`compare`);
- :mod:`simkit.realfront.strictmode`: what one page load under ``next dev`` does with its
  sockets (React StrictMode's double mount), measured and predicted;
- :mod:`simkit.realfront.workload`: reloads, hides and a duplicated tab, mixed;
- :mod:`simkit.realfront.identity`: which ids a real run's sockets claimed, who closed them;
- :mod:`simkit.realfront.problem1`: the shipped measurement of the rewrites proxy's
  "socket hang up", as one table;
- :mod:`simkit.realfront.figures`: each real play beside its prediction; problem 1's bars.

Notebook 11 tells the story with them; docs/frontend.md says what was measured.
"""
