"""Web pages on Gradio: the demo app (:mod:`faceanim.web.demo`) and the study's rater pages share one server
setup (:mod:`faceanim.web.server`): offline settings, a bounded queue, upload limits, a private temp folder and a
clean shutdown. Needs the ``demo`` extra (``pip install "faceanim[demo]"``); nothing here is imported by the core."""
