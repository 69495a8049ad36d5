"""The demo: synthetic clips with a known quality order and the demo studies built from them.

Not web code: the organizer's ``panelrank demo`` command, the tests and the benchmarks use it.
Import the module you need (nothing is imported here, so the web app does not load NumPy's
clip generator or PyAV):

* :mod:`study_app.demo.sources` — clean synthetic source content (:func:`~.sources.source_frames`).
* :mod:`study_app.demo.degradations` — named, strength-parameterised degradations.
* :mod:`study_app.demo.encoder` — RGB frames into H.264/MP4 or VP9/WebM (:func:`~.encoder.write_clip`).
* :mod:`study_app.demo.conditions` — the demo's conditions and their expected order.
* :mod:`study_app.demo.clipset` — one clip (:func:`~.clipset.make_clip`) and the demo set
  (:func:`~.clipset.generate_demo`).
* :mod:`study_app.demo.builder` — the demo studies, the organizer login and simulated votes
  (:func:`~.builder.build`).

Probing and decoding go through :mod:`analysis.video`.
"""
