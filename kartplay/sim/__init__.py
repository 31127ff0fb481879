"""The CarRacing-v3 simulator: pad mapping (``env``), the scripted expert
(``expert``), collecting sessions (``collect``), closed-loop evaluation
(``drive``), the ablation (``ablation``) and the main job (``demo``)."""
