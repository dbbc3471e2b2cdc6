{#- Full-width ASCII (U+FF01..U+FF5E), the ideographic space (U+3000) and the no-break space
    (U+00A0) to their half-width forms, as typed by Chinese input methods. -#}
{% macro to_halfwidth(column) -%}
    translate(
        {{ column }},
        '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 ',
        '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~  '
    )
{%- endmacro %}
