"""The CarRacing-v3 simulator: pad mapping (``env``), the scripted expert
(``expert``), collecting sessions (``collect``), closed-loop evaluation
(``drive``), the command lines of the stages (``commands``), the ablation
(``ablation``) and the main job (``demo``)."""
