"""TinyMIM distillation: early-stopped q/k/v, head alignment, frozen teacher, two-view transform, runs.

Import from the modules (this package's face stays empty, so the configs load without torch):
- ``config``: ``DistillConfig`` (one run), ``AblateConfig`` (the equal-budget ablation) and their shared
  ``TeacherStudentConfig``.
- ``run``: ``run_distill(cfg)`` (one run or a chain of stages) and ``distill_once(cfg)``.
- ``qkv``: ``extract_qkv(model, x, block)``: q, k, v of one block without running anything after it.
- ``alignment``: ``align_student_heads``, ``resolve_target_block``, ``freeze_unused`` (docs/METHOD.md section 1).
- ``setup``: ``build_distillation(teacher, student, methods, ...) -> Distillation`` (module, teacher, loss_fn).
- ``transforms``: ``TwoViewTransform(teacher_pre, student_pre)``: one crop + flip for both networks, each view
  finished as its card's ``Preprocess`` says, jitter for the student.
- ``teacher_loading``: ``load_teacher(spec, ...)``: tinymim checkpoint or timm name + weights.
- ``ablation``: ``run_ablation(cfg)``.
"""
