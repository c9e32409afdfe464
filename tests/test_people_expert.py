"""The people expert on real photos: OpenCV's bundled Haar cascades count a face, and nothing on a cup of coffee."""

from __future__ import annotations

import numpy as np
import pytest

from mmlong.experts.people import PeopleExpert, cascade_path, describe, people_count
from mmlong.registry import EXPERTS


def test_people_count_merges_a_face_with_the_body_around_it():
    face = (40, 10, 20, 20)
    assert people_count([face], [(30, 0, 40, 120)]) == 1  # the body holds the face: one person
    assert people_count([face], [(100, 0, 40, 120)]) == 2
    assert people_count([], []) == 0
    assert describe(1, 1, 0) == "1 person (1 face, 0 bodies)" and describe(3, 2, 1) == "3 people (2 faces, 1 body)"


def test_the_installed_opencv_wheel_carries_the_cascades():
    assert cascade_path("haarcascade_frontalface_default.xml").endswith(".xml")
    assert EXPERTS.create("people").name == "people"


def test_a_person_is_counted_where_shown_and_nobody_on_a_cup_of_coffee(tmp_path):
    from mmlong.benchmarks.niavh_media import fit_frame, load_image
    from mmlong.media.video.write import write_video

    person = fit_frame(load_image("astronaut"), 320, 240)
    cup = fit_frame(load_image("coffee"), 320, 240)
    frames = np.stack([person] * 12 + [cup] * 12)  # 6 s of a woman's portrait, then 6 s of coffee, at 2 fps
    write_video(tmp_path / "v.mp4", frames, 2.0)
    out = PeopleExpert().run(str(tmp_path / "v.mp4"))
    assert out.stats["frames"] == 6  # one frame every two seconds
    assert len(out.lines) == 1
    line = out.lines[0]
    assert line.source == "people" and line.text.startswith("1 person")
    assert line.start == pytest.approx(0.0, abs=0.6) and 3.5 <= line.end <= 6.0  # ... and not on the coffee
    assert line.render().endswith("[people] 1 person (1 face, 0 bodies)")
